"""EAOA (Zong & Huang, CVPR 2025): epistemic candidates from an energy detector, aleatoric picks among them."""

import math
import warnings
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs, Selection, Strategy, by_rows, checked_budget, fill_up


class EAOAStrategy(Strategy):
    """Keep the examples both epistemic scores call cleanest, then query the most aleatoric of them, per class.

    Written from the paper and the official code (github chenchenzong/EAOA at 66cdf84,
    query_strategies.eaoa_sampling and main.py), with its defaults:

    * aleatoric uncertainty (AU) of the K-way classifier: E(x) - E_{-y^}(x) = log(1 - p_max);
      `info` = posterior of the high-mean component of a 2-component GMM on min-max-scaled AU;
    * epistemic uncertainty (EU), model part: -logsumexp(known logits) + log(1 + exp(unknown logit)) of the
      K+1 detector (trained with the energy-margin loss, osal.models.modules.EnergyDetectorModule);
      data part: every labeled and invalid example lists its `neighbours` nearest pool examples (cosine
      on the detector's features); per pool example, the count of such lists per class, divided by the
      class's size over the mean known-class size, gives the same energy; `clean` = product of the
      low-mean posteriors of a GMM on each;
    * per class the classifier predicts: the ceil(B/K) x floor(k) cleanest are candidates, of which the
      ceil(B/K) with the highest `info` are queried; the batch is cut to B in random order;
    * k starts at `k_initial` and follows the queries' precision: after a query whose precision is
      more than `tolerance` away from `target_precision`, k grows by `step` when it was above (too clean
      a candidate set) and shrinks by `step` (not below 1) when it was below.

    As the official code: the network scores and the GMM posteriors are float32 (torch's logsumexp, and
    sklearn keeps float32 input), so they saturate at exactly 0 or 1 as soon as the official ones do; the pool
    is read in a random order (the official loader is a SubsetRandomSampler) drawn from the run's generator,
    and the per-class candidates come from torch.topk and numpy's default argsort in that order, so ties
    fall as they fall there (scripts/official_checks.py measures the agreement: docs/design.md).

    Departures from the official code (docs/design.md):

    * the GMMs draw from one legacy numpy generator seeded from the run's generator, in the official order,
      and the final order is drawn from the run's generator (the official code uses the global numpy and
      torch generators);
    * a class with too few pool examples gives what it has (the official torch.topk raises), and a batch
      short of B is filled with the remaining examples by `clean` x `info`, so every query asks for B;
    * where log(1 + exp(u)) of the unknown logit overflows float32 (u > 80), u itself (the official score is
      inf there and its GMM fails on NaN);
    * a known class without labeled examples gets weight 1 in the data part (the official weight 0 divides
      its counts into NaN, and its GMM fails).

    Kept although it looks accidental: before any unknown was queried, the class weights divide by a mean
    over K + 1 class sizes one of which is 0.

    The scores returned are `clean` x `info` (what the per-class picks favour).
    """

    query_model = "detector"
    needs = ("logits", "features", "classifier_logits", "labeled_features", "invalid_features")

    def __init__(self, neighbours: int = 250, k_initial: float = 5.0, target_precision: float = 0.6,
                 tolerance: float = 0.05, step: float = 1.0, max_iter: int = 10, tol: float = 1e-2,
                 reg_covar: float = 5e-4) -> None:
        if int(neighbours) < 1:
            raise ConfigError(f"strategy.selector.neighbours={neighbours} must be at least 1")
        if float(k_initial) < 1:
            raise ConfigError(f"strategy.selector.k_initial={k_initial} must be at least 1 (candidates per pick)")
        if not 0.0 < float(target_precision) <= 1.0:
            raise ConfigError(f"strategy.selector.target_precision={target_precision} must lie in (0, 1]")
        self.neighbours = int(neighbours)
        self.k = float(k_initial)
        self.target_precision, self.tolerance, self.step = float(target_precision), float(tolerance), float(step)
        self.max_iter, self.tol, self.reg_covar = int(max_iter), float(tol), float(reg_covar)

    # -- state across queries ------------------------------------------------------------
    def observe(self, queried: int, queried_known: int) -> None:
        """Adapt k to the precision of the query just answered (official main.py L174-178)."""
        if queried == 0:
            return
        precision = queried_known / queried
        if abs(precision - self.target_precision) > self.tolerance:
            if precision > self.target_precision:
                self.k += self.step
            elif self.k - self.step >= 1:
                self.k -= self.step

    def state_dict(self) -> dict:
        return {"k": self.k}

    def load_state_dict(self, state: dict) -> None:
        self.k = float(state.get("k", self.k))

    # -- scores ----------------------------------------------------------------------------
    def posterior(self, values: np.ndarray, high: bool, rng: np.random.Generator,
                  order: Optional[np.ndarray] = None) -> np.ndarray:
        """Posterior of the high- (or low-) mean component of a 2-component GMM on min-max-scaled values, in the
        values' precision (sklearn fits float32 input in float32, as the official code's scores are)."""
        values = np.asarray(values)
        if values.dtype != np.float32:
            values = values.astype(np.float64)
        span = values.max() - values.min() if len(values) else 0.0
        if len(values) < 2 or span == 0:
            return np.full(len(values), 0.5, dtype=values.dtype)
        scaled = ((values - values.min()) / span)[:, None]
        state = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(
            int(rng.integers(0, 2 ** 31 - 1)))
        gmm = GaussianMixture(n_components=2, max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar,
                              random_state=state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # 10 EM steps, as in the official code
            gmm.fit(scaled if order is None else scaled[order])  # fitted in the loader's order, as the official
        component = int(np.argmax(gmm.means_[:, 0]) if high else np.argmin(gmm.means_[:, 0]))
        return gmm.predict_proba(scaled)[:, component]

    @staticmethod
    def aleatoric(classifier_logits: np.ndarray) -> np.ndarray:
        """log(1 - p_max) of the classifier, as the official float32 expression -logsumexp(z) + logsumexp(z with
        the top logit replaced by -1e5): higher = more aleatoric."""
        def block(logits: np.ndarray) -> np.ndarray:
            z = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
            top = F.one_hot(z.argmax(dim=1), z.shape[1]).to(z.dtype)
            return (torch.logsumexp(z * (1 - top) - 1e5 * top, dim=1) - torch.logsumexp(z, dim=1)).numpy()
        return by_rows(block, classifier_logits)

    @staticmethod
    def energy(logits: np.ndarray, num_known: int, with_unknown: bool = True,
               precision: Optional[type] = None) -> np.ndarray:
        """-logsumexp(known columns) (+ log(1 + exp(unknown column))), in `precision` (the logits' own when None,
        float32 below that): higher = more likely unknown."""
        def block(logits: np.ndarray) -> np.ndarray:
            dtype = precision or (np.float64 if np.asarray(logits).dtype == np.float64 else np.float32)
            z = torch.from_numpy(np.ascontiguousarray(logits, dtype=dtype))
            value = -torch.logsumexp(z[:, :num_known], dim=1)
            if with_unknown:
                u = z[:, num_known]
                # the official log(1 + exp(u)), bit for bit where it is finite; u where it overflows
                value = value + torch.where(u > 80, u, torch.log(1 + torch.exp(torch.clamp(u, max=80))))
            return value.numpy()
        return by_rows(block, logits)

    def neighbour_counts(self, outputs: PoolOutputs) -> tuple:
        """(the pool rows some reference example lists among its nearest pool examples, ascending; per such row
        and class, how many reference examples of that class list it; the classes' sizes; whether the invalid
        set took part). Every other pool row counts 0 for every class: held for the listed rows only, the
        counts take memory of the labeled set's size x `neighbours`, not of the pool's x classes (4 GB at 10
        million x 100)."""
        k = outputs.num_known
        reference = [np.asarray(outputs.labeled_features, dtype=np.float64)]
        targets = [np.asarray(outputs.labeled_targets)]
        has_invalid = outputs.invalid_features is not None and len(outputs.invalid_features) > 0
        if has_invalid:
            reference.append(np.asarray(outputs.invalid_features, dtype=np.float64))
            targets.append(np.full(len(outputs.invalid_features), k))
        reference, targets = _unit(np.concatenate(reference)), np.concatenate(targets)
        features = outputs.features
        n = min(self.neighbours, len(features))
        listed = np.concatenate([self.nearest_pool_rows(reference[start:start + REFERENCE_BLOCK], features, n)
                                 for start in range(0, len(reference), REFERENCE_BLOCK)]).reshape(-1)
        rows, position = np.unique(listed, return_inverse=True)
        cells = position.reshape(-1) * (k + 1) + np.repeat(targets, n)
        # float32 counts: whole numbers, exact below 2**24, and no larger than the logits they sit beside
        counts = np.bincount(cells, minlength=len(rows) * (k + 1)).astype(np.float32).reshape(len(rows), k + 1)
        sizes = np.array([(targets == c).sum() for c in range(k + 1)], dtype=np.float64)
        return rows, counts, sizes, has_invalid

    def data_energy(self, outputs: PoolOutputs) -> np.ndarray:
        """EU's data part of every pool example: the energy of its class-weighted neighbour counts (a row no
        reference example lists has the energy of all-zero counts)."""
        k = outputs.num_known
        rows, counts, sizes, has_invalid = self.neighbour_counts(outputs)
        # the official weights: class size over the mean known-class size; before any unknown was queried the
        # mean runs over K + 1 entries, one of them 0 (a quirk kept so that selections agree)
        mean = sizes[:k].mean() if has_invalid else sizes.mean()
        weights = np.where(sizes > 0, sizes / mean, 1.0)
        unlisted = self.energy(np.zeros((1, k + 1), dtype=np.float32) / weights, k, with_unknown=has_invalid)
        energy = np.full(len(outputs.features), unlisted[0])
        energy[rows] = self.energy(counts / weights, k, with_unknown=has_invalid)
        return energy

    @staticmethod
    def nearest_pool_rows(block: np.ndarray, features: np.ndarray, n: int) -> np.ndarray:
        """For each (unit) row of `block`, the positions of its `n` most cosine-similar pool rows (in no order).

        The pool is read POOL_BLOCK rows at a time, each reference row keeping its best n so far, so memory is
        O(block x (POOL_BLOCK + n)) whatever the pool: a whole block x pool similarity matrix at 10 million
        pool rows would take 80 GB."""
        best_similarity = np.full((len(block), 0), -np.inf)
        best_rows = np.zeros((len(block), 0), dtype=np.int64)
        for start in range(0, len(features), POOL_BLOCK):
            part = _unit(np.asarray(features[start:start + POOL_BLOCK], dtype=np.float64))
            similarity = np.hstack([best_similarity, block @ part.T])  # the best so far, then this part's rows
            kept = best_rows.shape[1]
            if similarity.shape[1] > n:
                keep = np.argpartition(-similarity, n - 1, axis=1)[:, :n]
            else:
                keep = np.broadcast_to(np.arange(similarity.shape[1]), similarity.shape)
            earlier = np.take_along_axis(best_rows, np.minimum(keep, kept - 1), axis=1) if kept else 0
            best_rows = np.where(keep < kept, earlier, start + keep - kept)
            best_similarity = np.take_along_axis(similarity, keep, axis=1)
        return best_rows

    def _keys(self, outputs: PoolOutputs, rng: np.random.Generator, order: Optional[np.ndarray] = None) -> tuple:
        k = outputs.num_known
        au = self.aleatoric(outputs.classifier_logits)
        eu_model = self.energy(outputs.logits, k, precision=np.float32)  # a network's outputs: float32
        # one legacy generator for the three GMMs, consumed in the official order, as the official global one is
        # (scripts/official_regimes.gmm_seed seeds the official code alike, so that the checks compare like with
        # like: ten EM steps from different starts can end far apart)
        state = np.random.RandomState(int(rng.integers(0, 2 ** 31 - 1)))
        info = self.posterior(au, high=True, rng=state, order=order)
        clean = self.posterior(eu_model, high=False, rng=state, order=order)
        # the official clean_prob (float32) *= the data part's float64 posterior: the product stays float32
        np.multiply(clean, self.posterior(self.data_energy(outputs), high=False, rng=state, order=order), out=clean,
                    casting="same_kind")
        return au, eu_model, info, clean

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        if len(outputs) == 0:
            return np.zeros(0)
        _, _, info, clean = self._keys(outputs, rng, rng.permutation(len(outputs)))
        return clean * info

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        n = len(outputs)
        budget = checked_budget(outputs, budget)
        if n == 0:
            return Selection(outputs.indices[:0], np.zeros(0))
        order = rng.permutation(n)  # the official loader's order (a SubsetRandomSampler): ties fall in it
        au, eu_model, info, clean = self._keys(outputs, rng, order)
        k = outputs.num_known
        predicted = by_rows(lambda block: block[:, :k].argmax(axis=1), outputs.classifier_logits)
        per_class = math.ceil(budget / k) if budget else 0
        candidates_per_class = per_class * int(self.k)
        chosen = []
        for c in range(k):
            members = order[predicted[order] == c]
            # the cleanest, as the official torch.topk picks them (its order among ties included) ...
            top = torch.topk(torch.from_numpy(np.ascontiguousarray(clean[members])),
                             min(candidates_per_class, len(members))).indices.numpy()
            candidates = members[top]
            # ... then the most aleatoric of them, by numpy's default sort of the float64 copy the official makes
            picks = candidates[np.argsort(-info[candidates].astype(np.float64))[:per_class]]
            chosen.append(picks)
        chosen = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
        chosen = chosen[rng.permutation(len(chosen))][:budget]
        # a class with too few examples: fill by clean x info
        chosen = fill_up(chosen, np.lexsort((np.arange(n), -(clean * info))), budget)
        return Selection(outputs.indices[chosen], clean * info)


REFERENCE_BLOCK = 1024  # labeled + invalid rows compared with the pool at a time
POOL_BLOCK = 16384  # pool rows compared with them at a time


def _unit(rows: np.ndarray, eps: Optional[float] = 1e-12) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), eps)
