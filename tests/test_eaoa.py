"""EAOA: the shared contract, and known answers of each of its parts computed independently."""

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs
from osal.strategies.eaoa import EAOAStrategy

from strategy_contract import StrategyContract


class TestEAOAContract(StrategyContract):
    def make_strategy(self):
        return EAOAStrategy(neighbours=10)


def test_aleatoric_score_is_log_one_minus_the_top_probability():
    logits = np.random.default_rng(0).normal(0, 3, (50, 4))
    expected = np.log(1 - softmax(logits, axis=1).max(axis=1))
    aleatoric = EAOAStrategy.aleatoric(logits)
    assert aleatoric.dtype == np.float32  # as the official torch expression on a network's float32 outputs
    np.testing.assert_allclose(aleatoric, expected, rtol=1e-5, atol=1e-6)


def test_energy_leaves_the_unknown_output_out_and_adds_its_softplus():
    logits = np.array([[1.0, 2.0, 0.5], [-3.0, 0.0, 4.0]])
    known = -np.log(np.exp(logits[:, 0]) + np.exp(logits[:, 1]))
    np.testing.assert_allclose(EAOAStrategy.energy(logits, 2, with_unknown=False), known)
    np.testing.assert_allclose(EAOAStrategy.energy(logits, 2), known + np.log1p(np.exp(logits[:, 2])))


def brute_force_counts(pool, reference, targets, n, k):
    """For each reference row its n most cosine-similar pool rows; per pool row and class, how many lists hold it."""
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    similarity = unit(reference) @ unit(pool).T
    counts = np.zeros((len(pool), k + 1))
    for row, target in zip(similarity, targets):
        for j in np.argsort(-row)[:n]:
            counts[j, target] += 1
    return counts


@pytest.mark.parametrize("with_invalid", [False, True])
def test_neighbour_counts_equal_a_brute_force_count(with_invalid):
    rng = np.random.default_rng(1)
    k, n = 3, 7
    pool = rng.normal(0, 1, (2000, 5))  # more than one chunk of 1024 reference rows below
    labeled, labeled_targets = rng.normal(0, 1, (1100, 5)), rng.integers(0, k, 1100)
    invalid = rng.normal(0, 1, (40, 5)) if with_invalid else None
    outputs = PoolOutputs(np.arange(len(pool)), k, features=pool, labeled_features=labeled,
                          labeled_targets=labeled_targets, invalid_features=invalid)
    rows, counts, sizes, has_invalid = EAOAStrategy(neighbours=n).neighbour_counts(outputs)
    reference = labeled if invalid is None else np.concatenate([labeled, invalid])
    targets = labeled_targets if invalid is None else np.concatenate([labeled_targets, np.full(40, k)])
    dense = np.zeros((len(pool), k + 1))
    dense[rows] = counts
    np.testing.assert_array_equal(dense, brute_force_counts(pool, reference, targets, n, k))
    assert np.array_equal(rows, np.unique(rows)) and (counts.sum(axis=1) > 0).all()  # ascending, each listed
    assert has_invalid == with_invalid and sizes.tolist() == [(targets == c).sum() for c in range(k + 1)]


@pytest.mark.parametrize("with_invalid", [False, True])
def test_the_data_energy_of_listed_and_unlisted_rows_equals_the_dense_computation(with_invalid):
    """Counts are kept for the listed pool rows only (most of a large pool is listed by no reference row): every
    row's energy is bit for bit that of the whole pool x classes count matrix the official code builds."""
    rng = np.random.default_rng(2)
    k, n = 4, 5
    pool = rng.normal(0, 1, (3000, 6))
    labeled, labeled_targets = rng.normal(0, 1, (60, 6)), np.arange(60) % k
    invalid = rng.normal(0, 1, (20, 6)) if with_invalid else None
    outputs = PoolOutputs(np.arange(len(pool)), k, features=pool, labeled_features=labeled,
                          labeled_targets=labeled_targets, invalid_features=invalid)
    reference = labeled if invalid is None else np.concatenate([labeled, invalid])
    targets = labeled_targets if invalid is None else np.concatenate([labeled_targets, np.full(20, k)])
    dense = brute_force_counts(pool, reference, targets, n, k).astype(np.float32)
    sizes = np.array([(targets == c).sum() for c in range(k + 1)], dtype=np.float64)
    mean = sizes[:k].mean() if with_invalid else sizes.mean()
    expected = EAOAStrategy.energy(dense / np.where(sizes > 0, sizes / mean, 1.0), k, with_unknown=with_invalid)
    energy = EAOAStrategy(neighbours=n).data_energy(outputs)
    assert (dense.sum(axis=1) == 0).sum() > 2000  # most rows unlisted
    np.testing.assert_array_equal(energy, expected)


@pytest.mark.parametrize("precision, k_before, k_after", [
    (0.9, 5, 6),    # too clean a candidate set: more candidates
    (0.3, 5, 4),    # too dirty: fewer
    (0.62, 5, 5),   # within the tolerance of 0.6: unchanged
    (0.3, 1, 1),    # never below 1
])
def test_the_candidate_set_follows_the_precision_toward_its_target(precision, k_before, k_after):
    strategy = EAOAStrategy(k_initial=k_before)
    strategy.observe(100, round(100 * precision))
    assert strategy.k == k_after
    restored = EAOAStrategy()
    restored.load_state_dict(strategy.state_dict())
    assert restored.k == k_after


def separated_outputs(rng, k=3, per_class=200, unknown=300):
    """A pool whose known examples sit near their class's labeled examples and whose unknowns near the invalid set."""
    centres = rng.normal(0, 4, (k + 1, 16))
    labels = np.concatenate([np.repeat(np.arange(k), per_class), np.full(unknown, k)])
    features = centres[labels] + rng.normal(0, 1, (len(labels), 16))
    detector = rng.normal(0, 1, (len(labels), k + 1))
    detector[np.arange(len(labels)), labels] += 6.0
    classifier = rng.normal(0, 1, (len(labels), k))
    classifier[labels < k, labels[labels < k]] += rng.uniform(0, 6, (labels < k).sum())
    labeled_targets = np.repeat(np.arange(k), 20)
    return labels, PoolOutputs(
        np.arange(len(labels)) + 1000, k, logits=detector, features=features, classifier_logits=classifier,
        labeled_features=centres[labeled_targets] + rng.normal(0, 1, (len(labeled_targets), 16)),
        labeled_targets=labeled_targets, invalid_features=centres[k] + rng.normal(0, 1, (30, 16)))


def test_picks_are_spread_over_the_predicted_classes_and_mostly_known():
    rng = np.random.default_rng(2)
    labels, outputs = separated_outputs(rng)
    budget = 60
    chosen = EAOAStrategy(k_initial=2).select(outputs, budget, np.random.default_rng(0)) - 1000
    predicted = outputs.classifier_logits.argmax(axis=1)
    assert len(chosen) == budget and len(set(chosen.tolist())) == budget
    assert np.bincount(predicted[chosen], minlength=3).tolist() == [math.ceil(budget / 3)] * 3
    assert (labels[chosen] < 3).mean() > 0.9  # the energy detector and the neighbours keep the unknowns out
    random_precision = (labels < 3).mean()
    assert random_precision < 0.7


def test_a_class_too_small_for_its_share_still_gives_a_full_batch():
    rng = np.random.default_rng(3)
    labels, outputs = separated_outputs(rng, per_class=30, unknown=40)
    outputs.classifier_logits[:, 0] -= 100  # no example is predicted as class 0
    chosen = EAOAStrategy(k_initial=5).select(outputs, 90, np.random.default_rng(0))
    assert len(chosen) == 90 and len(set(chosen.tolist())) == 90


def test_bad_knobs_are_refused_in_one_sentence():
    for knobs, name in [({"neighbours": 0}, "neighbours=0"), ({"k_initial": 0.5}, "k_initial=0.5"),
                        ({"target_precision": 1.5}, "target_precision=1.5")]:
        with pytest.raises(ConfigError, match=name):
            EAOAStrategy(**knobs)


def test_the_energy_detector_loss_adds_the_squared_hinges_to_the_cross_entropy():
    from osal.models.modules import EnergyDetectorModule
    from osal.models.network import build_network
    from osal.models.small_cnn import SmallCNNEncoder
    module = EnergyDetectorModule(2, lambda num_outputs: build_network(lambda: SmallCNNEncoder(1, 4), num_outputs),
                                  lambda params: torch.optim.SGD(params, lr=0.1))
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.5, 0.2, 2.0], [-1.0, -2.0, 1.0]])
    targets = torch.tensor([0, 2, 2])
    energy = -torch.logsumexp(logits[:, :2], dim=1)
    hinge_in = torch.relu(energy[:1] + 25.0).pow(2).mean()
    hinge_out = torch.relu(-7.0 - energy[1:]).pow(2).mean()
    expected = torch.nn.functional.cross_entropy(logits, targets) + 0.01 * (hinge_in + hinge_out)
    torch.testing.assert_close(module.loss(logits, targets), expected)
    # a batch of knowns only has no unknown term, and no NaN
    known_only = module.loss(logits[:1], targets[:1])
    assert torch.isfinite(known_only)
    torch.testing.assert_close(known_only, torch.nn.functional.cross_entropy(logits[:1], targets[:1])
                               + 0.01 * hinge_in)


def test_before_any_unknown_was_queried_the_detector_learns_by_cross_entropy_alone():
    """As the official round 0 (train_model_ID): the energy hinge joins once the invalid set holds examples
    (on_fit_start reads that from the datamodule's pool, fit by fit)."""
    from osal.models.modules import EnergyDetectorModule
    from osal.models.network import build_network
    from osal.models.small_cnn import SmallCNNEncoder
    module = EnergyDetectorModule(2, lambda num_outputs: build_network(lambda: SmallCNNEncoder(1, 4), num_outputs),
                                  lambda params: torch.optim.SGD(params, lr=0.1))
    logits, targets = torch.tensor([[3.0, 1.0, 0.0], [0.5, 0.2, 2.0]]), torch.tensor([0, 1])
    cross_entropy = torch.nn.functional.cross_entropy(logits, targets)
    module.with_unknowns = False
    torch.testing.assert_close(module.loss(logits, targets), cross_entropy)
    module.with_unknowns = True  # the hinge at -25 is far from these logits: a large extra term
    assert module.loss(logits, targets) > cross_entropy + 1.0


@pytest.mark.slow
def test_a_continued_run_equals_the_uninterrupted_one(tmp_path):
    """The candidate-set size is kept with the run's state and the last classifier is fit again on resume: a run
    continued after round 1 gives the records of one that ran through."""
    from osal.loop.experiment import Experiment
    from osal.records.metrics import read_metrics
    from osal.records.run_state import load_state

    from conftest import FAST, compose_config
    base = FAST + ["strategy=eaoa", "mismatch=0.4", "trainer.max_epochs=3", "al.query_size=60"]
    Experiment(compose_config(base + ["al.rounds=3"]), tmp_path / "through").run()
    Experiment(compose_config(base + ["al.rounds=1"]), tmp_path / "continued").run()
    assert load_state(tmp_path / "continued").strategy_state["k"] != 5.0  # the first answers moved it
    Experiment(compose_config(base + ["al.rounds=3"]), tmp_path / "continued").run()
    untimed = [[{k: v for k, v in row.items() if not k.endswith("seconds")} for row in read_metrics(d / "metrics.csv")]
               for d in (tmp_path / "through", tmp_path / "continued")]
    assert untimed[0] == untimed[1]
    assert load_state(tmp_path / "through").strategy_state == load_state(tmp_path / "continued").strategy_state
