"""Consensus: the shared contract and known answers of its vote and its ranks."""

import numpy as np
import pytest

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs
from osal.strategies.consensus import ConsensusStrategy, _ranks
from osal.strategies.lfosa import LfOSA

from strategy_contract import StrategyContract


class TestConsensusContract(StrategyContract):
    def make_strategy(self):
        return ConsensusStrategy(neighbours=3)


def test_ranks_are_in_zero_one_with_ties_sharing_their_mean_rank():
    np.testing.assert_allclose(_ranks(np.array([3.0, 1.0, 2.0, 2.0])), [1.0, 0.0, 0.5, 0.5])


def test_closeness_is_the_mean_similarity_to_the_nearest_references_by_brute_force():
    rng = np.random.default_rng(0)
    pool, reference = rng.normal(0, 1, (5000, 6)), rng.normal(0, 1, (30, 6))  # more than one chunk of 4096
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    similarity = unit(pool) @ unit(reference).T
    expected = np.sort(similarity, axis=1)[:, -4:].mean(axis=1)
    np.testing.assert_allclose(ConsensusStrategy(neighbours=4).closeness(pool, reference), expected, rtol=1e-10)


def outputs_near_the_labels(with_invalid):
    """Pool examples 0-9 sit by the labeled examples, 10-19 by the queried unknowns."""
    rng = np.random.default_rng(1)
    known, unknown = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    features = np.concatenate([known + rng.normal(0, 0.1, (10, 3)), unknown + rng.normal(0, 0.1, (10, 3))])
    logits = rng.normal(0, 1, (20, 3))
    logits[np.arange(20), np.arange(20) % 2] += 5.0  # the detector predicts classes 0 and 1 in turn
    return PoolOutputs(np.arange(20), 2, logits=logits, features=features,
                       labeled_features=known + rng.normal(0, 0.1, (8, 3)),
                       invalid_features=unknown + rng.normal(0, 0.1, (8, 3)) if with_invalid else None)


def test_the_first_query_is_the_vote_of_the_labeled_neighbourhood_alone():
    outputs = outputs_near_the_labels(with_invalid=False)
    strategy = ConsensusStrategy(neighbours=3, candidates=1)  # the batch is the candidates
    np.testing.assert_allclose(strategy.scores(outputs, np.random.default_rng(0)),
                               _ranks(strategy.vote(outputs, np.random.default_rng(0))))
    assert sorted(strategy.select(outputs, 10, np.random.default_rng(0)).tolist()) == list(range(10))


def test_later_queries_average_the_ranks_of_the_detector_and_the_vote():
    outputs = outputs_near_the_labels(with_invalid=True)
    strategy = ConsensusStrategy(neighbours=3, detector_weight=0.25, candidates=1)
    known = _ranks(LfOSA().scores(outputs, np.random.default_rng(5)))
    expected = 0.25 * known + 0.75 * _ranks(strategy.vote(outputs, np.random.default_rng(0)))
    np.testing.assert_allclose(strategy.scores(outputs, np.random.default_rng(5)), expected)
    # the neighbourhood outweighs a detector that guesses: the examples by the labels come first, mostly
    assert (strategy.select(outputs, 10, np.random.default_rng(0)) < 10).sum() >= 8


def test_each_predicted_class_gives_its_share_from_its_candidates_lowest_first():
    # 12 pool examples, their score falling with the index; classes 0 (0-8) and 1 (9-11) as the detector predicts
    features = np.zeros((12, 2))
    features[:, 0] = np.linspace(1.0, 0.1, 12)
    features[:, 1] = 1.0
    logits = np.zeros((12, 3))
    logits[:9, 0] = 1.0
    logits[9:, 1] = 1.0
    outputs = PoolOutputs(np.arange(12), 2, logits=logits, features=features,
                          labeled_features=np.array([[1.0, 0.0]]))
    # budget 4, candidates 1.5: a quota of 3 per class; class 0's are 0, 1, 2, class 1's 9, 10, 11
    chosen = ConsensusStrategy(neighbours=1, candidates=1.5).select(outputs, 4, np.random.default_rng(0))
    assert chosen.tolist() == [2, 1, 11, 10]  # equal shares before any unknown: each from its lowest candidate up
    # a class short of its share: the rest by score
    logits[9:, 1] = 0.0
    logits[9:, 0] = 1.0
    outputs.logits = logits
    chosen = ConsensusStrategy(neighbours=1, candidates=1.0).select(outputs, 4, np.random.default_rng(0))
    assert chosen.tolist() == [1, 0, 2, 3]


def test_shares_follow_the_known_examples_the_detector_expects_in_each_class():
    strategy = ConsensusStrategy()
    predicted = np.array([0, 0, 0, 1, 1, 2])
    assert strategy.shares(predicted, None, 3, 9).tolist() == [3, 3, 3]  # the first query: equal
    known = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.0])  # 3 expected in class 0, 1 in class 1, none in class 2
    assert strategy.shares(predicted, known, 3, 8).tolist() == [6, 2, 0]
    assert strategy.shares(predicted, known, 3, 5).tolist() == [4, 1, 0]  # 3.75 and 1.25: largest remainder
    assert strategy.shares(predicted, np.zeros(6), 3, 3).tolist() == [1, 1, 1]  # nothing expected: equal


@pytest.mark.parametrize("knobs, named", [({"neighbours": 0}, "neighbours=0"),
                                          ({"detector_weight": 1.5}, "detector_weight=1.5"),
                                          ({"candidates": 0.5}, "candidates=0.5"),
                                          ({"pool_sample_factor": 0}, "pool_sample_factor=0"),
                                          ({"first_detector_weight": -0.1}, "first_detector_weight=-0.1")])
def test_bad_knobs_are_refused_in_one_sentence(knobs, named):
    with pytest.raises(ConfigError, match=named):
        ConsensusStrategy(**knobs)


def test_a_class_has_no_more_candidates_than_the_knowns_the_detector_expects_in_it():
    class Fixed(ConsensusStrategy):
        def components(self, outputs, rng):
            return np.linspace(1.0, 0.0, len(outputs)), known  # the score falls with the index

    known = np.array([1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # 2.6 knowns expected, all predicted class 0
    logits = np.zeros((8, 3))
    logits[:, 0] = 1.0
    outputs = PoolOutputs(np.arange(8), 2, logits=logits, features=np.ones((8, 2)))
    # share 2 (class 1 expects nothing), 3 x 2 = 6 candidates capped to ceil(2.6) = 3: the least typical of 0, 1, 2
    assert Fixed(candidates=3).select(outputs, 2, np.random.default_rng(0)).tolist() == [2, 1]


def a_pool_with_a_dense_unknown_class_beside_the_knowns():
    """Known examples spread widely around the labeled ones; an unknown class packed tightly at a moderate angle
    from them, four times as many: closer to the labeled set than many knowns, and far denser in the pool."""
    rng = np.random.default_rng(3)
    known_direction, unknown_direction = np.array([1.0, 0.0, 0.0]), np.array([0.9, np.sqrt(1 - 0.81), 0.0])
    knowns = known_direction + rng.normal(0, 0.45, (200, 3))
    unknowns = unknown_direction + rng.normal(0, 0.02, (800, 3))
    features = np.concatenate([knowns, unknowns])
    logits = rng.normal(0, 1, (1000, 3))
    return PoolOutputs(np.arange(1000), 2, logits=logits, features=features,
                       labeled_features=known_direction + rng.normal(0, 0.45, (40, 3)))


def test_the_pool_reference_ranks_a_dense_unknown_class_below_the_knowns_the_labels_alone_cannot():
    outputs = a_pool_with_a_dense_unknown_class_beside_the_knowns()
    plain = ConsensusStrategy(neighbours=5).vote(outputs, np.random.default_rng(0))
    against_pool = ConsensusStrategy(neighbours=5, pool_reference=True).vote(outputs, np.random.default_rng(0))
    # of the 200 best-voted, how many are the 200 knowns
    known_share = lambda vote: float(np.mean(np.argsort(-vote, kind="stable")[:200] < 200))  # noqa: E731
    assert known_share(plain) < 0.5  # the dense unknowns crowd the labels' neighbourhood
    assert known_share(against_pool) > 0.85
    # it is the first query's alone: once unknowns were answered, the vote is against them as before
    with_invalid = PoolOutputs(outputs.indices, 2, logits=outputs.logits, features=outputs.features,
                               labeled_features=outputs.labeled_features,
                               invalid_features=outputs.features[200:210])
    np.testing.assert_array_equal(
        ConsensusStrategy(neighbours=5, pool_reference=True).vote(with_invalid, np.random.default_rng(0)),
        ConsensusStrategy(neighbours=5).vote(with_invalid, np.random.default_rng(0)))


def test_a_pool_example_drawn_into_the_reference_is_not_its_own_neighbour():
    rng = np.random.default_rng(4)
    pool = rng.normal(0, 1, (50, 4))
    rows = np.array([3, 17, 40])
    closeness = ConsensusStrategy(neighbours=1).closeness(pool, pool[rows], rows_in_reference=rows)
    unit = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    similarity = unit @ unit[rows].T
    similarity[rows, np.arange(3)] = -np.inf
    np.testing.assert_allclose(closeness, similarity.max(axis=1))
    assert np.all(closeness[rows] < 1 - 1e-9)


class TestConsensusWithPoolReferenceContract(StrategyContract):
    def make_strategy(self):
        return ConsensusStrategy(neighbours=3, pool_reference=True)


def test_top_up_fills_the_invalid_reference_with_a_pool_sample_to_the_labeled_sets_size():
    base = a_pool_with_a_dense_unknown_class_beside_the_knowns()
    outputs = PoolOutputs(base.indices, 2, logits=base.logits, features=base.features,
                          labeled_features=base.labeled_features, invalid_features=base.features[200:210])
    strategy = ConsensusStrategy(neighbours=5, top_up=True)
    sample = np.sort(np.random.default_rng(7).choice(1000, size=40 - 10, replace=False))
    reference = np.concatenate([outputs.invalid_features, outputs.features[sample]])
    expected = strategy.closeness(outputs.features, outputs.labeled_features) - strategy.closeness(
        outputs.features, reference, rows_in_reference=np.concatenate([np.full(10, -1), sample]))
    np.testing.assert_allclose(strategy.vote(outputs, np.random.default_rng(7)), expected)
    # an invalid set as large as the labeled set needs no sample
    full = PoolOutputs(base.indices, 2, logits=base.logits, features=base.features,
                       labeled_features=base.labeled_features[:10], invalid_features=base.features[200:210])
    np.testing.assert_array_equal(strategy.vote(full, np.random.default_rng(7)),
                                  ConsensusStrategy(neighbours=5).vote(full, np.random.default_rng(7)))


def test_a_larger_pool_sample_is_compared_with_as_many_times_more_neighbours():
    outputs = a_pool_with_a_dense_unknown_class_beside_the_knowns()
    strategy = ConsensusStrategy(neighbours=5, pool_reference=True, pool_sample_factor=4)
    sample = np.sort(np.random.default_rng(2).choice(1000, size=160, replace=False))
    expected = strategy.closeness(outputs.features, outputs.labeled_features) - strategy.closeness(
        outputs.features, outputs.features[sample], rows_in_reference=sample, neighbours=20)
    np.testing.assert_allclose(strategy.vote(outputs, np.random.default_rng(2)), expected)


def test_the_first_query_can_weigh_in_lfosas_known_probability():
    outputs = outputs_near_the_labels(with_invalid=False)
    rng = np.random.default_rng(0)
    strategy = ConsensusStrategy(neighbours=3, first_detector_weight=0.25)
    expected = 0.25 * _ranks(LfOSA().scores(outputs, np.random.default_rng(0))) + 0.75 * _ranks(
        ConsensusStrategy(neighbours=3).vote(outputs, np.random.default_rng(0)))
    scores, known = strategy.components(outputs, rng)
    np.testing.assert_allclose(scores, expected)
    assert known is None  # equal shares in the first query still
