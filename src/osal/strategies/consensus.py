"""Consensus (osal's own): query what both the detector and the neighbourhood of the labels call known."""

from typing import Optional

import numpy as np

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs, Selection, Strategy, by_rows, checked_budget, fill_up, rank_descending
from osal.strategies.lfosa import LfOSA


class ConsensusStrategy(Strategy):
    """LfOSA's known probability, checked against the feature-space neighbourhood of the labels answered so far.

    Designed from what this project measured of LfOSA: its first query is its worst (its detector has never
    seen an unknown, precision 0.5-0.86 on MNIST against above 0.93 later), and its known probability
    saturates at exactly 1 for most of the pool, leaving the order among them to chance. Every answer so
    far is evidence too: a pool example whose nearest answered examples (cosine on the detector's features)
    are labeled knowns is likely known; one whose nearest are queried unknowns is likely not.

    * neighbourhood vote: the mean similarity of an example to its `neighbours` most similar labeled
      examples, minus the same for the invalid set (when there is one);
    * the first query (no invalid set yet): the vote alone, since the detector cannot tell unknowns;
    * later queries: the rank of LfOSA's known probability and the rank of the vote, averaged with
      weight `detector_weight` on the detector;
    * each class the detector predicts gives its share of the batch: equal shares in the first query, then in
      proportion to the known examples the detector expects still in that class (the sum of LfOSA's known
      probabilities of its members), each from its `candidates` x share best-scored examples, the least typical
      first. Pure purity stops paying: the surest knowns are the most typical ones, nearest to what is labeled,
      and crowd into the easiest class (in a pilot on MNIST every pick of a pure ranking was a "1" and accuracy
      fell to 0.67 against LfOSA's 0.84); and equal shares to the end asked exhausted classes for unknowns
      (precision 0.43 and 0.21 in the last two of 12 queries of a recall-protocol pilot);
    * a class has no more candidates than the known examples the detector expects in it (never fewer than its
      share): once the knowns run short, the least typical of 3 x share candidates are mostly unknowns.

    The scores returned are the combined ranks in [0, 1].
    """

    query_model = "detector"
    needs = ("logits", "features", "labeled_features", "invalid_features")

    def __init__(self, neighbours: int = 10, detector_weight: float = 0.5, candidates: float = 3.0,
                 pool_reference: bool = False, top_up: bool = False, pool_sample_factor: float = 1.0,
                 first_detector_weight: float = 0.0) -> None:
        if int(neighbours) < 1:
            raise ConfigError(f"strategy.selector.neighbours={neighbours} must be at least 1")
        if not 0.0 <= float(detector_weight) <= 1.0:
            raise ConfigError(f"strategy.selector.detector_weight={detector_weight} must lie in [0, 1]")
        if float(candidates) < 1:
            raise ConfigError(f"strategy.selector.candidates={candidates} must be at least 1 (a multiple of the "
                              "query size)")
        self.neighbours, self.detector_weight = int(neighbours), float(detector_weight)
        self.candidates = float(candidates)
        if not 0.0 <= float(first_detector_weight) <= 1.0:
            raise ConfigError(f"strategy.selector.first_detector_weight={first_detector_weight} must lie in [0, 1]")
        self.first_detector_weight = float(first_detector_weight)
        if float(pool_sample_factor) <= 0:
            raise ConfigError(f"strategy.selector.pool_sample_factor={pool_sample_factor} must be positive (the pool "
                              "sample's size as a multiple of the labeled set's)")
        self.pool_reference, self.top_up = bool(pool_reference), bool(top_up)
        self.pool_sample_factor = float(pool_sample_factor)
        self.lfosa = LfOSA()

    def closeness(self, pool: np.ndarray, reference: np.ndarray, rows_in_reference: Optional[np.ndarray] = None,
                  neighbours: Optional[int] = None) -> np.ndarray:
        """Mean cosine similarity of each pool row to its `neighbours` most similar reference rows;
        `rows_in_reference[j]`, when given, is the pool row that reference row j is (-1: none), never its own
        neighbour."""
        reference = _unit(reference)
        m = min(neighbours or self.neighbours, len(reference) - (rows_in_reference is not None))
        out = np.empty(len(pool))
        for start in range(0, len(pool), 4096):  # bounded memory: 4096 pool rows at a time, made unit-length here
            similarity = _unit(np.asarray(pool[start:start + 4096], dtype=np.float64)) @ reference.T
            if rows_in_reference is not None:
                inside = (rows_in_reference >= start) & (rows_in_reference < start + len(similarity))
                similarity[rows_in_reference[inside] - start, np.flatnonzero(inside)] = -np.inf
            out[start:start + 4096] = np.partition(similarity, similarity.shape[1] - m, axis=1)[:, -m:].mean(axis=1)
        return out

    def vote(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        features = outputs.features  # read 4096 rows at a time: no float64 copy of the whole pool
        labeled = np.asarray(outputs.labeled_features, dtype=np.float64)
        vote = self.closeness(features, labeled)
        invalid = outputs.invalid_features
        invalid = np.zeros((0, labeled.shape[1])) if invalid is None else np.asarray(invalid, dtype=np.float64)
        # The labeled set is a random sample of the knowns and the pool a mixture of knowns and unknowns, so
        # closeness to the labeled set against closeness to an equal sample of the pool is a nearest-neighbour
        # estimate of the density ratio p(x | known) / p(x), which orders the pool as p(known | x) does: a pool
        # sample stands in for the unknowns not answered yet (all of them before the first query; with `top_up`,
        # as many as the invalid set falls short of the labeled set's size afterwards)
        # (a sample `pool_sample_factor` times larger, its `neighbours` as many times more, is a less noisy
        # estimate of the same ratio)
        wanted = 0
        if self.pool_reference and len(invalid) == 0:
            wanted = len(labeled)
        elif self.top_up:
            wanted = max(0, len(labeled) - len(invalid))
        factor = self.pool_sample_factor
        wanted = min(int(round(wanted * factor)), len(outputs) - 1)
        if wanted > 0:
            sample = np.sort(rng.choice(len(outputs), size=wanted, replace=False))
            reference = np.concatenate([invalid, np.asarray(features[sample], dtype=np.float64)])
            rows = np.concatenate([np.full(len(invalid), -1), sample])  # -1: not a pool row
            vote = vote - self.closeness(features, reference, rows_in_reference=rows,
                                         neighbours=int(round(self.neighbours * factor)))
        elif len(invalid):
            vote = vote - self.closeness(features, invalid)
        return vote

    def components(self, outputs: PoolOutputs, rng: np.random.Generator) -> tuple:
        """(combined score, LfOSA's known probability or None before any unknown was queried) of the pool."""
        vote = _ranks(self.vote(outputs, rng))
        if outputs.invalid_features is None or len(outputs.invalid_features) == 0:
            if self.first_detector_weight == 0:
                return vote, None
            # the first query: LfOSA's known probability from a detector that has seen no unknown, weighed in;
            # the classes still give equal shares (the detector cannot tell how many knowns each holds yet)
            first = _ranks(self.lfosa.scores(outputs, rng))
            return self.first_detector_weight * first + (1.0 - self.first_detector_weight) * vote, None
        lfosa = self.lfosa.scores(outputs, rng)
        return self.detector_weight * _ranks(lfosa) + (1.0 - self.detector_weight) * vote, np.clip(lfosa, 0, 1)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        return self.components(outputs, rng)[0] if len(outputs) else np.zeros(0)

    def shares(self, predicted: np.ndarray, known: np.ndarray, k: int, budget: int) -> np.ndarray:
        """How many of the batch each predicted class gives: equal before any unknown was queried, then in
        proportion to the known examples the detector expects still in it (the sum of its known probabilities)."""
        mass = np.ones(k) if known is None else np.bincount(predicted, weights=known, minlength=k)[:k]
        if mass.sum() <= 0:
            mass = np.ones(k)
        exact = budget * mass / mass.sum()
        shares = np.floor(exact).astype(int)
        shares[np.argsort(-(exact - shares), kind="stable")[:budget - shares.sum()]] += 1  # largest remainders
        return shares

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        """Each predicted class gives its share of the batch (`shares`) from its `candidates` x share best-scored
        examples, the least typical of them first; what a class cannot give is taken by score."""
        n = len(outputs)
        budget = checked_budget(outputs, budget)
        if n == 0:
            return Selection(outputs.indices[:0], np.zeros(0))
        scores, known = self.components(outputs, rng)
        if budget == 0:
            return Selection(outputs.indices[:0], scores)
        k = outputs.num_known
        order = rank_descending([scores], rng)  # highest score first, ties in the generator's order
        # by blocks of rows: slicing the K known columns of the whole pool's logits would copy them (4 GB at 10M)
        predicted = by_rows(lambda block: block[:, :k].argmax(axis=1), outputs.logits)
        chosen = []
        mass = None if known is None else np.bincount(predicted, weights=known, minlength=k)[:k]
        for c, share in enumerate(self.shares(predicted, known, k, budget)):
            members = order[predicted[order] == c]
            size = int(np.ceil(self.candidates * share))
            if mass is not None:  # no more candidates than the knowns the detector expects in the class
                size = max(share, min(size, int(np.ceil(mass[c]))))
            candidates = members[:size]
            chosen.extend(candidates[::-1][:share].tolist())  # the least typical of the sure ones first
        chosen = fill_up(chosen, order, budget)  # classes too small for their share: the rest by score
        return Selection(outputs.indices[chosen], scores)

def _ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank in [0, 1] (ties share their mean rank): 1 is the largest."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return np.ones(len(values))
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    # equal values get the mean of their ranks
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse] / (len(values) - 1)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
