"""The contract every strategy keeps, tested once for all: each strategy's tests inherit this class."""

import numpy as np
import pytest

from osal.strategies.base import PoolOutputs


class StrategyContract:
    """Subclasses define `make_strategy()`; `logit_columns` says how wide the query model's output is."""

    num_known = 3
    pool_size = 60
    logit_columns = None  # default: K+1 for a detector-based strategy, K for a classifier-based one

    def make_strategy(self):
        raise NotImplementedError

    def make_outputs(self, n=None, seed=0) -> PoolOutputs:
        """Synthetic predictions for a pool of `n` examples at scattered global indices: no network anywhere."""
        rng = np.random.default_rng(seed)
        n = self.pool_size if n is None else n
        k = self.num_known
        strategy = self.make_strategy()
        columns = self.logit_columns or (k + 1 if strategy.query_model == "detector" else k)
        labeled_targets = np.repeat(np.arange(k), 8)
        labeled_logits = rng.normal(0, 1, (len(labeled_targets), k))
        labeled_logits[np.arange(len(labeled_targets)), labeled_targets] += 4.0
        return PoolOutputs(
            indices=np.sort(rng.choice(100_000, size=n, replace=False)),
            num_known=k,
            logits=rng.normal(0, 2, (n, columns)),
            features=rng.normal(0, 1, (n, 8)).astype(np.float32),
            mc_probabilities=rng.dirichlet(np.ones(k), size=(5, n)),
            labeled_features=rng.normal(0, 1, (len(labeled_targets), 8)).astype(np.float32),
            labeled_logits=labeled_logits,
            labeled_targets=labeled_targets,
            classifier_logits=rng.normal(0, 2, (n, k)),
            invalid_features=rng.normal(0, 1, (6, 8)).astype(np.float32),
        )

    @pytest.mark.parametrize("budget", [0, 1, 17, 60])
    def test_exactly_min_budget_pool_unique_indices_from_the_pool(self, budget):
        outputs = self.make_outputs()
        chosen = np.asarray(self.make_strategy().select(outputs, budget, np.random.default_rng(0)))
        assert len(chosen) == min(budget, len(outputs))
        assert len(np.unique(chosen)) == len(chosen)
        assert set(chosen.tolist()) <= set(outputs.indices.tolist())

    def test_same_seed_gives_the_same_query(self):
        outputs = self.make_outputs(seed=4)
        a = self.make_strategy().select(outputs, 20, np.random.default_rng(11))
        b = self.make_strategy().select(outputs, 20, np.random.default_rng(11))
        assert np.array_equal(a, b)

    def test_budget_larger_than_the_pool_queries_the_whole_pool(self):
        outputs = self.make_outputs(n=25)
        chosen = self.make_strategy().select(outputs, 1000, np.random.default_rng(0))
        assert sorted(np.asarray(chosen).tolist()) == sorted(outputs.indices.tolist())

    def test_scores_are_finite_one_per_pool_example(self):
        outputs = self.make_outputs()
        scores = np.asarray(self.make_strategy().scores(outputs, np.random.default_rng(0)))
        assert scores.shape == (len(outputs),) and np.isfinite(scores).all()

    def test_needs_only_what_inference_can_produce(self):
        from osal.strategies.base import LABELED_NEEDS, POOL_NEEDS
        assert set(self.make_strategy().needs) <= POOL_NEEDS | LABELED_NEEDS

    def test_query_returns_the_selection_with_one_score_per_pool_example(self):
        from osal.strategies.base import Selection
        outputs = self.make_outputs(seed=5)
        selection = self.make_strategy().query(outputs, 12, np.random.default_rng(3))
        assert isinstance(selection, Selection)
        assert selection.indices.tolist() == self.make_strategy().select(outputs, 12, np.random.default_rng(3)).tolist()
        scores = np.asarray(selection.scores)
        assert scores.shape == (len(outputs),) and np.isfinite(scores).all()
        if selection.known_probability is not None:
            assert selection.known_probability.shape == (len(outputs),)
            assert ((selection.known_probability >= 0) & (selection.known_probability <= 1)).all()
