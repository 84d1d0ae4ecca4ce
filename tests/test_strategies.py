"""Every baseline keeps the contract, and each gets a known-answer test on synthetic predictions."""

import tracemalloc

import numpy as np
import pytest

from osal.errors import ConfigError
from osal.strategies.bald import BALDStrategy
from osal.strategies.base import PoolOutputs, entropy
from osal.strategies.certainty import CertaintyStrategy
from osal.strategies.coreset import CoresetStrategy
from osal.strategies.known_probability import KnownProbabilityStrategy
from osal.strategies.lfosa import LfOSA
from osal.strategies.openmax import OpenMaxStrategy
from osal.strategies.random import RandomStrategy
from osal.strategies.uncertainty import UncertaintyStrategy

from strategy_contract import StrategyContract


class TestRandom(StrategyContract):
    def make_strategy(self):
        return RandomStrategy()

    def test_different_seeds_give_different_queries(self):
        outputs = self.make_outputs()
        a = self.make_strategy().select(outputs, 20, np.random.default_rng(1))
        b = self.make_strategy().select(outputs, 20, np.random.default_rng(2))
        assert not np.array_equal(a, b)


def entropy_outputs():
    # rows from confident to uniform: entropy increases with the row number
    logits = np.array([[9.0, 0, 0], [3.0, 0, 0], [1.0, 0.5, 0], [0.1, 0, 0.05], [0.0, 0, 0]])
    return PoolOutputs(np.array([10, 20, 30, 40, 50]), 3, logits=logits)


class TestUncertainty(StrategyContract):
    def make_strategy(self):
        return UncertaintyStrategy()

    def test_most_uncertain_first(self):
        chosen = self.make_strategy().select(entropy_outputs(), 5, np.random.default_rng(0))
        assert chosen.tolist()[:3] == [50, 40, 30] and set(chosen[3:]) == {20, 10}


class TestCertainty(StrategyContract):
    def make_strategy(self):
        return CertaintyStrategy()

    def test_most_confident_first(self):
        chosen = self.make_strategy().select(entropy_outputs(), 5, np.random.default_rng(0))
        assert chosen.tolist() == [10, 20, 30, 40, 50]


def test_entropy_has_no_nan_on_zero_probabilities():
    assert entropy(np.array([[1.0, 0.0, 0.0]]))[0] == 0.0
    assert entropy(np.array([[0.5, 0.5]]))[0] == pytest.approx(np.log(2))


class TestCoreset(StrategyContract):
    def make_strategy(self):
        return CoresetStrategy(chunk_size=7)

    def test_k_center_picks_the_far_cluster_first(self):
        rng = np.random.default_rng(0)
        near = rng.normal(0, 0.1, (50, 4))
        far = rng.normal(0, 0.1, (5, 4)) + 20.0
        outputs = PoolOutputs(np.arange(1000, 1055), 2, features=np.vstack([near, far]).astype(np.float32),
                              labeled_features=rng.normal(0, 0.1, (10, 4)).astype(np.float32))
        first = self.make_strategy().select(outputs, 1, np.random.default_rng(0))
        assert first[0] >= 1050
        # after one far point is a center, the next pick lies far from both centers
        two = self.make_strategy().select(outputs, 2, np.random.default_rng(0))
        assert two[0] >= 1050

    def test_greedy_picks_spread_out(self):
        # points on a line, the labeled center at 0: greedy takes 10, then 5, then 2.5 or 7.5
        positions = np.linspace(0, 10, 41)[:, None].astype(np.float32)
        outputs = PoolOutputs(np.arange(41), 2, features=positions, labeled_features=np.zeros((1, 1), np.float32))
        chosen = self.make_strategy().select(outputs, 3, np.random.default_rng(0))
        assert positions[chosen[0], 0] == 10.0 and positions[chosen[1], 0] == 5.0
        assert positions[chosen[2], 0] in (2.5, 7.5)

    def test_memory_stays_linear_in_the_pool(self):
        # a 20,000 x 5,000 distance matrix would take 400 MB; chunked, far less is ever allocated
        rng = np.random.default_rng(0)
        outputs = PoolOutputs(np.arange(20_000), 2, features=rng.normal(size=(20_000, 32)).astype(np.float32),
                              labeled_features=rng.normal(size=(5_000, 32)).astype(np.float32))
        tracemalloc.start()
        CoresetStrategy(chunk_size=256).select(outputs, 50, np.random.default_rng(0))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 30e6, f"peak {peak / 1e6:.0f} MB"


class TestBALD(StrategyContract):
    def make_strategy(self):
        return BALDStrategy(mc_samples=5)

    def test_prefers_disagreement_over_shared_uncertainty(self):
        t = 6
        disagree = np.array([[1.0, 0.0], [0.0, 1.0]] * (t // 2))  # confident samples that contradict each other
        shared = np.full((t, 2), 0.5)                               # every sample equally unsure
        agree = np.tile([0.9, 0.1], (t, 1))
        probabilities = np.stack([shared, disagree, agree], axis=1)  # (T, n=3, C=2)
        outputs = PoolOutputs(np.array([7, 8, 9]), 2, mc_probabilities=probabilities)
        scores = self.make_strategy().scores(outputs, np.random.default_rng(0))
        assert scores[1] == pytest.approx(np.log(2)) and scores[0] == pytest.approx(0.0, abs=1e-12)
        assert self.make_strategy().select(outputs, 1, np.random.default_rng(0)).tolist() == [8]

    def test_needs_two_samples(self):
        with pytest.raises(ConfigError):
            BALDStrategy(mc_samples=1)


def openmax_outputs(seed=0):
    """Three known classes clustered at 6 x one-hot, plus a far-away cluster of unknowns."""
    rng = np.random.default_rng(seed)
    k = 3
    labeled_targets = np.repeat(np.arange(k), 30)
    labeled_logits = rng.normal(0, 0.5, (90, k)) + 6.0 * np.eye(k)[labeled_targets]
    pool_targets = np.repeat(np.arange(k), 10)
    near = rng.normal(0, 0.5, (30, k)) + 6.0 * np.eye(k)[pool_targets]
    far = rng.normal(0, 0.5, (10, k)) + np.array([30.0, 25.0, -20.0])
    return PoolOutputs(np.arange(40), k, logits=np.vstack([near, far]), labeled_logits=labeled_logits,
                       labeled_targets=labeled_targets)


class TestOpenMax(StrategyContract):
    def make_strategy(self):
        return OpenMaxStrategy(tail_size=5, alpha_rank=2)

    def test_rejects_a_far_away_cluster(self):
        outputs = openmax_outputs()
        strategy = OpenMaxStrategy(tail_size=10, alpha_rank=2)
        unknown = strategy.unknown_probability(outputs)
        assert unknown[30:].min() > 0.9 and unknown[:30].max() < unknown[30:].min()
        chosen = strategy.select(outputs, 30, np.random.default_rng(0))
        assert set(chosen.tolist()) == set(range(30))  # the far cluster is queried last

    def test_bad_parameters(self):
        with pytest.raises(ConfigError):
            OpenMaxStrategy(tail_size=1)


class TestKnownProbability(StrategyContract):
    logit_columns = 2

    def make_strategy(self):
        return KnownProbabilityStrategy()

    def test_most_probably_known_first(self):
        logits = np.array([[0.0, 3.0], [2.0, -1.0], [0.5, 0.0]])
        chosen = self.make_strategy().select(PoolOutputs(np.array([1, 2, 3]), 5, logits=logits), 3,
                                             np.random.default_rng(0))
        assert chosen.tolist() == [2, 3, 1]


class TestLfOSAContract(StrategyContract):
    def make_strategy(self):
        return LfOSA()


class TestLfOSAOnTheClassifierContract(StrategyContract):
    def make_strategy(self):
        return LfOSA(query_model="classifier")


def test_bald_scores_reduced_batch_by_batch_equal_the_whole_pool_at_once():
    import torch

    from osal.build import build
    from osal.engine.inference import collect_outputs, run_network
    from osal.loop.data import open_set_data

    from conftest import compose_config
    cfg = compose_config(["strategy=bald", "data.inference_batch_size=100"])
    _, dm = open_set_data(cfg)
    network = build(cfg.model)(num_outputs=dm.num_known)
    strategy = BALDStrategy(mc_samples=4)
    torch.manual_seed(0)  # the same dropout masks for both passes
    whole = run_network(network, dm.pool_dataloader(), "cpu", mc_samples=4)
    torch.manual_seed(0)
    outputs = collect_outputs(network, dm, strategy, "cpu")
    assert outputs.mc_probabilities is None and outputs.mc_scores.shape == (len(dm.pool.unlabeled),)
    expected = strategy.scores(PoolOutputs(whole["indices"], dm.num_known,
                                           mc_probabilities=whole["mc_probabilities"]), np.random.default_rng(0))
    np.testing.assert_allclose(outputs.mc_scores, expected, rtol=1e-6, atol=1e-9)
    assert len(np.unique(outputs.mc_scores)) > 10  # the dropout samples really disagree
