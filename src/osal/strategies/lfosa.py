"""LfOSA (Ning et al., CVPR 2022): query the examples a per-class MAV mixture calls most likely known."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from osal.errors import ConfigError
from osal.strategies.base import (
    PoolOutputs,
    Selection,
    Strategy,
    by_rows,
    check_query_model,
    checked_budget,
    fill_up,
    rank_descending,
    take_top,
)


class LfOSA(Strategy):
    """Rank the pool by the known probability of each example's max activation value (MAV).

    From the query model's raw logits: predicted class = argmax, MAV = max (Eq. 5).
    For each predicted known class c, a GMM with `n_components` components is fit to the
    MAVs of the examples predicted as c (Eq. 6); an example's known probability is the
    posterior of the component with the largest mean. Examples are ranked by it (Eq. 7-8).

    Rules beyond the paper (documented in docs/design.md):
      * predicted-unknown examples (argmax = the detector's extra output) are never queried
        while predicted-known ones remain; if the budget reaches them they come in order of
        (largest known logit - unknown logit), the most known-looking first;
      * a predicted class with fewer than `n_components` examples cannot be fit: its examples
        get known probability `small_class_probability` (0.5, i.e. undecided), so they rank
        below confidently known examples, above confidently unknown ones, and are never dropped;
      * ties: the posterior saturates at exactly 1.0 for most clearly known examples, which
        leaves the top of the ranking to chance. `tie_break: random` (default, the paper's
        plain sort) leaves equal probabilities to the seeded generator; `tie_break: mav` (the
        `lfosa_mav_ties` variant) orders them by the MAV's standing in its class's known
        component, (MAV - mean) / std, the most certain first. `tie_break: loader` does what
        the authors' code (ningkp/LfOSA, Sampling.AV_sampling_temperature) does, step for
        step: the pool in a random order drawn from the generator (their loader is a
        SubsetRandomSampler), one GMM per predicted class (the unknown class too) in the order
        the classes first appear there, all drawing from one legacy generator, classes of
        fewer than 2 examples left out, predicted unknowns at probability 0, and numpy's
        default sort of the concatenated probabilities, whose order among ties it keeps
        (scripts/official_checks.py: docs/design.md).

    Args:
        query_model: "detector" (LfOSA) or "classifier" (the w/o-detector ablation).
        n_components, max_iter, tol, reg_covar: sklearn GaussianMixture parameters (the
            authors' values by default); each fit is seeded from the generator passed to select.
    """

    needs = ("logits",)

    def __init__(self, query_model: str = "detector", n_components: int = 2, max_iter: int = 10,
                 tol: float = 1e-2, reg_covar: float = 5e-4, small_class_probability: float = 0.5,
                 tie_break: str = "random") -> None:
        check_query_model(query_model)
        if int(n_components) < 2:
            raise ConfigError(f"strategy.selector.n_components={n_components}: the known/unknown split needs a GMM "
                              "with at least 2 components; use 2")
        self.query_model = query_model
        self.n_components = int(n_components)
        self.max_iter, self.tol, self.reg_covar = int(max_iter), float(tol), float(reg_covar)
        self.small_class_probability = float(small_class_probability)
        if tie_break not in ("mav", "random", "loader"):
            raise ConfigError(f"strategy.selector.tie_break={tie_break!r} must be 'mav', 'random' or 'loader'")
        self.tie_break = tie_break

    def known_probability(self, logits: np.ndarray, num_known: int,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(known probability, predicted-known mask, MAV standing in its class) of every row of `logits`."""
        predicted = by_rows(lambda block: block.argmax(axis=1), logits)
        mav = by_rows(lambda block: block.max(axis=1), logits)
        probability = np.zeros(len(logits))
        standing = np.zeros(len(logits))
        seeds = rng.integers(0, 2 ** 31 - 1, size=num_known)
        for c in range(num_known):
            members = np.flatnonzero(predicted == c)
            if len(members) == 0:
                continue
            if len(members) < self.n_components:
                probability[members] = self.small_class_probability
                continue
            probability[members], mean, std = self._top_component(mav[members], int(seeds[c]))
            standing[members] = (mav[members] - mean) / std
        return probability, predicted < num_known, standing

    def _top_component(self, values: np.ndarray, seed: int) -> tuple[np.ndarray, float, float]:
        """Posterior of the largest-mean component for each value, and that component's mean and std."""
        gmm = GaussianMixture(n_components=self.n_components, max_iter=self.max_iter, tol=self.tol,
                              reg_covar=self.reg_covar, random_state=seed)
        with warnings.catch_warnings():
            # 10 EM steps often stop before the tolerance, as in the authors' code: expected
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(values[:, None])
        top = int(np.argmax(gmm.means_[:, 0]))
        std = float(np.sqrt(gmm.covariances_.reshape(self.n_components, -1)[top, 0]))
        return gmm.predict_proba(values[:, None])[:, top], float(gmm.means_[top, 0]), std

    def _keys(self, outputs: PoolOutputs, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        logits = outputs.logits  # read by blocks of rows (by_rows): no float64 copy of the whole pool
        k = outputs.num_known
        probability, predicted_known, standing = self.known_probability(logits, k, rng)
        if logits.shape[1] == k:  # a K-way classifier predicts no unknowns
            return probability, standing
        # below every predicted known, the most known-looking predicted unknown first
        margin = by_rows(lambda block: block[:, :k].max(axis=1) - block[:, k:].max(axis=1), logits)
        unknown_score = -1.0 + 1.0 / (1.0 + np.exp(-np.clip(margin, -50, 50)))
        return np.where(predicted_known, probability, unknown_score), np.where(predicted_known, standing, 0.0)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        """Known probability in [0, 1] for predicted knowns; predicted unknowns in (-1, 0), ranked by margin."""
        return self._keys(outputs, rng)[0]

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        """The ranking by known probability; `scores` as `scores` gives them, `known_probability` clipped to
        [0, 1] (0 for predicted unknowns), from the same GMM fits."""
        if self.tie_break == "loader":
            return self._as_the_authors_code(outputs, budget, rng)
        score, standing = self._keys(outputs, rng)
        keys = [score, standing] if self.tie_break == "mav" else [score]
        return Selection(take_top(outputs, rank_descending(keys, rng), budget), score, as_probability(score))

    def _as_the_authors_code(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        """`tie_break: loader`: the official AV_sampling_temperature, its order among ties included."""
        n, k = len(outputs), outputs.num_known
        order = rng.permutation(n)  # the loader's order
        state = np.random.RandomState(int(rng.integers(0, 2 ** 31 - 1)))  # the official global generator
        logits = outputs.logits
        predicted = by_rows(lambda block: block.argmax(axis=1), logits)[order]
        mav = by_rows(lambda block: block.max(axis=1), logits)[order].astype(np.float64)
        classes, first = np.unique(predicted, return_index=True)
        positions, probabilities = [], []
        score = np.zeros(n)
        for c in classes[np.argsort(first)]:  # the classes in the order they first appear
            members = np.flatnonzero(predicted == c)
            if len(members) < 2:
                continue  # the official code leaves such a class out
            gmm = GaussianMixture(n_components=self.n_components, max_iter=self.max_iter, tol=self.tol,
                                  reg_covar=self.reg_covar, random_state=state)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gmm.fit(mav[members, None])
            probability = gmm.predict_proba(mav[members, None])[:, int(np.argmax(gmm.means_[:, 0]))]
            if c >= k:
                probability = np.zeros(len(members))
            positions.append(order[members])
            probabilities.append(probability)
            score[order[members]] = probability
        if positions:
            positions, probabilities = np.concatenate(positions), np.concatenate(probabilities)
            chosen = positions[np.argsort(probabilities)][::-1][:budget]  # the official takes the last B
        else:
            chosen = np.zeros(0, dtype=np.int64)
        chosen = fill_up(chosen, rank_descending([score], rng), checked_budget(outputs, budget))
        return Selection(outputs.indices[chosen], score, as_probability(score))


def as_probability(score: np.ndarray) -> np.ndarray:
    """LfOSA's scores as known probabilities: predicted unknowns (negative scores) get 0."""
    return np.clip(score, 0.0, 1.0)


def known_probability(detector_outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
    """LfOSA's known probability of every row of K+1-way detector outputs, with the paper's GMM settings.

    For those who need the estimate without LfOSA's ranking: an annotation batch chosen by another
    strategy, and `predict`.
    """
    k = detector_outputs.num_known
    if detector_outputs.logits is not None and detector_outputs.logits.shape[1] > k + 1:
        # a detector with more outputs after its K+1 (EOAL's one-vs-all head): LfOSA reads the K+1
        detector_outputs = PoolOutputs(detector_outputs.indices, k, logits=detector_outputs.logits[:, :k + 1])
    return as_probability(LfOSA().scores(detector_outputs, rng))
