"""MQNet: its scores by hand, its meta-network's training, its CSI network, and whole runs through the loop."""

import math

import numpy as np
import pytest
import torch

from osal.errors import ConfigError
from osal.models.csi import ContrastiveShiftModule, nt_xent
from osal.strategies.base import PoolOutputs
from osal.strategies.mqnet import MQNetStrategy, QueryNet, informativeness, purity, ranking_loss, standardized_exp

from strategy_contract import StrategyContract


def answered(strategy, outputs, budget=20, seed=0):
    """The strategy after one query of `outputs` and the oracle's answers to it (half known, by row)."""
    selection = strategy.query(outputs, budget, np.random.default_rng(seed))
    answers = np.where(np.arange(len(selection)) % 2 == 0, np.arange(len(selection)) % outputs.num_known, -1)
    strategy.learn(selection.indices, answers)
    return strategy


class TestMQNetFirstQueryContract(StrategyContract):
    def make_strategy(self):
        return MQNetStrategy(epochs=4, steps_per_epoch=5)


class TestMQNetWithItsMetaNetworkContract(StrategyContract):
    def make_strategy(self):
        strategy = MQNetStrategy(epochs=4, steps_per_epoch=5)
        return answered(strategy, TestMQNetFirstQueryContract().make_outputs(seed=9))


def test_purity_is_the_highest_cosine_similarity_to_a_labeled_example():
    labeled = np.array([[1.0, 0.0], [0.0, 2.0]])
    pool = np.array([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    assert purity(pool, labeled) == pytest.approx([1.0, 1 / math.sqrt(2), 0.0, 0.0])
    assert purity(pool, labeled, rows=1) == pytest.approx(purity(pool, labeled))


def test_informativeness_is_one_minus_the_top_probability():
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]])
    assert informativeness(logits) == pytest.approx([0.5, 0.25])


def test_standardized_exp_uses_the_population_std_and_a_constant_gives_ones():
    assert standardized_exp(np.array([1.0, 3.0])) == pytest.approx([math.exp(-1), math.exp(1)])
    assert standardized_exp(np.array([2.0, 2.0])).tolist() == [1.0, 1.0]


def test_the_first_query_ranks_by_informativeness_plus_exp_of_standardised_purity():
    # three pool rows: a confident near-copy of a labeled example, an uncertain one far from both, an uncertain
    # near-copy; worked out by hand: informativeness 0, 0.5, 0.5; purity 1, 0, 1
    outputs = PoolOutputs(indices=np.array([10, 20, 30]), num_known=2,
                          features=np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0]]),
                          labeled_features=np.array([[2.0, 0.0], [0.0, 1.0]]),
                          classifier_logits=np.array([[50.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    z = (np.array([1.0, 0.0, 1.0]) - 2 / 3) / np.sqrt(2 / 9)
    expected = np.array([0.0, 0.5, 0.5]) + np.exp(z)
    selection = MQNetStrategy().query(outputs, 3, np.random.default_rng(0))
    assert selection.indices.tolist() == [30, 10, 20]
    assert selection.scores == pytest.approx(expected, abs=1e-9)


def test_only_a_subset_of_the_pool_is_scored_and_the_rest_ranks_below_it():
    outputs = TestMQNetFirstQueryContract().make_outputs(n=50, seed=3)
    selection = MQNetStrategy(subset=10).query(outputs, 50, np.random.default_rng(1))
    floor = selection.scores.min()
    assert (selection.scores == floor).sum() == 40  # the unscored ones, one below the lowest scored
    scored = set(outputs.indices[selection.scores > floor].tolist())
    assert set(selection.indices[:len(scored)].tolist()) == scored  # the scored ones first


def test_the_ranking_loss_by_hand():
    # pairs (0, 3) and (1, 2): predicted differences 3 and -1, target differences -4 and 2 -> signs -1, +1;
    # hinges max(0, 1 + 3) = 4 and max(0, 1 - (-1)) = 2: mean 3
    predicted = torch.tensor([[3.0], [1.0], [2.0], [0.0]])
    target = torch.tensor([[1.0], [2.0], [0.0], [5.0]])
    assert ranking_loss(predicted, target).item() == pytest.approx(3.0)


def test_the_query_net_never_scores_lower_when_an_input_rises():
    net = QueryNet(2, 64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.nn.init.normal_(net.W1)  # negative weights too: relu keeps the score monotone
        torch.nn.init.normal_(net.W2)
        x = torch.rand(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        for column in (0, 1):
            higher = x.clone()
            higher[:, column] += 0.5
            assert (net(higher) >= net(x) - 1e-12).all()


def test_the_meta_network_learns_which_queried_examples_were_worth_asking():
    """Queried examples whose purity is high were known and costly to the classifier (high loss); those of low
    purity were unknown (target 0): the meta-network trained on them ranks pure examples first."""
    rng = np.random.default_rng(0)
    n, k = 64, 3
    pure = rng.uniform(0, 1, n)
    known = pure > 0.5
    answers = np.where(known, rng.integers(0, k, n), -1)
    logits = rng.normal(0, 1, (n, k))
    info = rng.uniform(0, 1, n)
    meta = MQNetStrategy().train_meta(info, pure, logits, answers, seed=3)
    with torch.no_grad():
        scores = meta(torch.from_numpy(np.stack([standardized_exp(info), standardized_exp(pure)], 1))).reshape(-1)
    assert scores[torch.from_numpy(known)].mean() > scores[torch.from_numpy(~known)].mean()


def test_learning_needs_the_answers_to_the_query_it_asked():
    outputs = TestMQNetFirstQueryContract().make_outputs(seed=2)
    strategy = MQNetStrategy(epochs=2, steps_per_epoch=2)
    selection = strategy.query(outputs, 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="another query"):
        strategy.learn(selection.indices[::-1], np.zeros(6, dtype=np.int64))
    strategy.learn(selection.indices, np.zeros(6, dtype=np.int64))  # a second call has nothing left to learn
    strategy.learn(selection.indices, np.zeros(6, dtype=np.int64))


def test_the_meta_network_is_kept_with_the_runs_state():
    import json
    outputs = TestMQNetFirstQueryContract().make_outputs(seed=4)
    trained = answered(MQNetStrategy(epochs=3, steps_per_epoch=3), outputs)
    state = json.loads(json.dumps(trained.state_dict()))
    restored = MQNetStrategy(epochs=3, steps_per_epoch=3)
    restored.load_state_dict(state)
    a = trained.query(outputs, 10, np.random.default_rng(5))
    b = restored.query(outputs, 10, np.random.default_rng(5))
    assert a.indices.tolist() == b.indices.tolist() and np.array_equal(a.scores, b.scores)
    assert MQNetStrategy().state_dict() == {"meta": None}
    with pytest.raises(ValueError, match="meta-network"):
        restored.load_state_dict({"meta": {"W1": [0.0]}})


def test_bad_knobs_are_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"strategy.selector.batch_size=1 must be at least 2"):
        MQNetStrategy(batch_size=1)
    with pytest.raises(ConfigError, match=r"strategy.selector.lr=0"):
        MQNetStrategy(lr=0)


# -- the CSI network ------------------------------------------------------------------------------


def test_nt_xent_by_hand():
    # two images, two copies each, orthogonal: each row's positive has similarity 1, its two negatives 0
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z = torch.stack([a, b, a, b])
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert nt_xent(z @ z.t(), temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def csi_module():
    from functools import partial

    from osal.models.network import build_network
    from osal.models.small_cnn import SmallCNNEncoder
    return ContrastiveShiftModule(3, partial(build_network, partial(SmallCNNEncoder, in_channels=1, width=4)),
                                  partial(torch.optim.SGD, lr=0.01))


def test_the_views_are_two_copies_in_four_rotations_with_their_rotation_labels():
    module = csi_module()
    module.on_fit_start()
    x = torch.randn(5, 1, 8, 8)
    views, rotations = module.views(x)
    assert views.shape == (40, 1, 8, 8)
    assert rotations.tolist() == ([0] * 5 + [1] * 5 + [2] * 5 + [3] * 5) * 2
    projection, shift = module.net.forward_features(views)
    assert projection.shape == (40, 128) and shift.shape == (40, 4)
    loss = module.batch_loss(x, torch.full((5,), -1), torch.arange(5))
    assert torch.isfinite(loss) and loss.item() > 0


def test_the_csi_network_cannot_be_tested_as_a_classifier():
    with pytest.raises(NotImplementedError, match="test the classifier"):
        csi_module().test_step((torch.zeros(1, 1, 8, 8), torch.zeros(1), torch.zeros(1)), 0)


# -- the unlabeled examples a fit may train on ---------------------------------------------------


def test_a_fit_may_train_on_a_seeded_sample_of_the_unlabeled_examples_or_all_of_them():
    from osal.data.active_pool import ActivePool
    from osal.data.oracle import SimulatedOracle
    pool = ActivePool(20, 2, SimulatedOracle(np.array([0, 1, 5] * 6 + [0, 1]), 2))
    pool.annotate([3, 4, 5, 6], 0)  # 3, 4, 6 known; 5 unknown
    indices, targets = pool.training_set(with_invalid=True, unlabeled=-1)
    assert indices.tolist() == list(range(20))  # everything, in index order
    assert targets[[3, 4, 5, 6]].tolist() == [0, 1, 2, 0] and (np.delete(targets, [3, 4, 5, 6]) == -1).all()
    sample, sample_targets = pool.training_set(with_invalid=False, unlabeled=5, seed=7)
    assert len(sample) == 3 + 5 and (np.diff(sample) > 0).all() and (sample_targets == -1).sum() == 5
    assert pool.training_set(False, unlabeled=5, seed=7)[0].tolist() == sample.tolist()
    assert pool.training_set(False, unlabeled=5, seed=8)[0].tolist() != sample.tolist()
    assert pool.training_set(False)[0].tolist() == [3, 4, 6]


# -- whole runs -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_csi_network_is_fit_once_and_a_continued_run_equals_the_uninterrupted_one(tmp_path, caplog):
    """The CSI network is fit at the first query alone; the meta-network learned from each query is kept with the
    run's state, and a resumed run fits the same CSI network again: its records equal an uninterrupted run's."""
    import logging

    from osal.loop.experiment import Experiment
    from osal.records.metrics import read_metrics
    from osal.records.run_state import load_state

    from conftest import FAST, compose_config

    base = FAST + ["strategy=mqnet", "mismatch=0.4", "trainer.max_epochs=2", "al.query_size=60",
                   "strategy.selector.epochs=10"]
    with caplog.at_level(logging.INFO, logger="osal.loop.experiment"):
        Experiment(compose_config(base + ["al.rounds=3"]), tmp_path / "through").run()
    assert sum("fit once per run, not again" in r.getMessage() for r in caplog.records) == 2  # rounds 2 and 3
    Experiment(compose_config(base + ["al.rounds=1"]), tmp_path / "continued").run()
    assert load_state(tmp_path / "continued").strategy_state["meta"] is not None  # learned from query 1
    Experiment(compose_config(base + ["al.rounds=3"]), tmp_path / "continued").run()
    untimed = [[{k: v for k, v in row.items() if not k.endswith("seconds")} for row in read_metrics(d / "metrics.csv")]
               for d in (tmp_path / "through", tmp_path / "continued")]
    assert [row["queried"] for row in untimed[0]] == [0, 60, 60, 60]
    assert untimed[0] == untimed[1]
    assert load_state(tmp_path / "through").strategy_state == load_state(tmp_path / "continued").strategy_state
