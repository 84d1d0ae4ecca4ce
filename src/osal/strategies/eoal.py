"""EOAL (Safaei et al., AAAI 2024): known-looking, informative examples by two entropies, spread over clusters."""

from typing import Optional

import numpy as np
from scipy.special import softmax

from osal import clustering
from osal.strategies.base import PoolOutputs, Selection, Strategy, by_rows, checked_budget, fill_up


class EOALStrategy(Strategy):
    """Query low closed-set entropy minus distance entropy among predicted knowns, round-robin over FINCH clusters.

    Written from the paper and the official code (github bardisafa/EOAL at baadd13,
    query_strategies.eoal_sampling), with its defaults. The query model is EOAL's detector
    (osal.models.modules.OneVsAllDetectorModule), whose outputs at query time are its K+1 logits
    followed by its one-vs-all head's 2K logits:

    * closed-set entropy H_c: the mean over the K one-vs-all heads of each head's binary entropy, / log 2;
    * once unknowns were queried, distance entropy H_d: the entropy of softmax(-Euclidean distance) to the
      centres of K FINCH clusters of the invalid set's features, / log C; the score is H_c - H_d, lowest first
      (confidently one known class, and near no one unknown cluster more than the others);
    * only examples the detector predicts as known (argmax of the K+1 logits < K) are candidates; FINCH
      clusters the candidates' features, the finest partition with at most B clusters is taken, and the
      clusters give their lowest scores in turn (`per cluster = floor(min(B, candidates) / C)` a pass, the
      remainder to the first clusters), until B are chosen;
    * a batch short of B (fewer candidates) is filled with the predicted unknowns of lowest score;
    * the pool is read in a random order drawn from the run's generator, as the official loader (a
      SubsetRandomSampler) reads it: FINCH numbers the clusters in that order, which decides the clusters that
      take a pass's remainder, and ties fall in it.

    Departures (docs/design.md): the invalid set's clusters are computed from its features after training
    (the official code reuses those its detector computed at the start of its last epoch); FINCH's first
    neighbours are found in chunks (the same neighbours, without a dense N x N matrix); the one-vs-all head
    is read with the test transform (the official code scores training-augmented images). `diversity:
    false` ranks the candidates by score alone, as the official `--diversity 0`. `finch` names the
    finch-clust release whose FINCH hierarchy is reproduced (osal.clustering.hierarchy): "0.1.9", which the
    official code pins, stops the hierarchy early at a distance threshold; "0.2.3" ignores it. Above
    `exact_neighbours_up_to` candidates FINCH's first neighbours are approximate (osal.clustering), as the
    FINCH package's own are above 10,000 points: the clustering of a pool of millions then takes minutes,
    not days.

    The scores returned are -(H_c - H_d): larger is queried first.
    """

    query_model = "detector"
    needs = ("logits", "features", "invalid_features")

    def __init__(self, diversity: bool = True,
                 exact_neighbours_up_to: Optional[int] = clustering.EXACT_NEIGHBOURS_UP_TO,
                 finch: str = clustering.DEFAULT_FINCH) -> None:
        self.diversity = bool(diversity)
        self.finch = clustering.checked_finch(finch)
        self.exact_up_to = None if exact_neighbours_up_to is None else int(exact_neighbours_up_to)

    def entropies(self, outputs: PoolOutputs) -> np.ndarray:
        """H_c - H_d (H_c alone before any unknown was queried) of every pool example: lower is queried first."""
        k = outputs.num_known
        logits = outputs.logits  # read by blocks of rows (by_rows): no float64 copy of the whole pool
        if logits.shape[1] != 3 * k + 1:
            raise ValueError(f"EOAL reads the K+1 detector logits and the 2K one-vs-all logits ({3 * k + 1} "
                             f"columns), got {logits.shape[1]}: use EOAL's detector (strategy=eoal)")

        def known_entropy(block: np.ndarray) -> np.ndarray:
            one_vs_all = softmax(block[:, k + 1:].reshape(len(block), 2, k), axis=1)
            return np.mean(np.sum(-one_vs_all * np.log(one_vs_all + 1e-8), axis=1), axis=1) / np.log(2)
        score = by_rows(known_entropy, logits)
        invalid = outputs.invalid_features
        if invalid is not None and len(invalid) > 0:
            invalid = np.asarray(invalid, dtype=np.float64)
            centres = clustering.centres(invalid, clustering.clusters(invalid, k, self.finch))
            if len(centres) > 1:  # one centre gives no distance entropy (log 1 = 0)
                def distance_entropy(features: np.ndarray) -> np.ndarray:
                    squared = (np.square(features).sum(1)[:, None] + np.square(centres).sum(1)[None, :]
                               - 2.0 * features @ centres.T)
                    closeness = softmax(-np.sqrt(np.maximum(squared, 0.0)), axis=1)
                    return np.sum(-closeness * np.log(closeness + 1e-20), axis=1) / np.log(len(centres))
                score = score - by_rows(distance_entropy, outputs.features)
        return score

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        return -self.entropies(outputs) if len(outputs) else np.zeros(0)

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        n = len(outputs)
        budget = checked_budget(outputs, budget)
        if n == 0:
            return Selection(outputs.indices[:0], np.zeros(0))
        score = self.entropies(outputs)
        k = outputs.num_known
        # the pool in the order the official loader (a SubsetRandomSampler) gives it: FINCH numbers the clusters
        # in it, the clusters that take a pass's remainder are the first so numbered, and ties fall in it
        order = rng.permutation(n)
        # the predicted knowns, read by blocks of rows: no copy of the pool's K+1 detector columns
        known = by_rows(lambda block: block[:, :k + 1].argmax(axis=1) < k, outputs.logits)
        candidates = order[known[order]]
        if self.diversity and len(candidates) > 1:
            chosen = self.round_robin(candidates, score, np.asarray(outputs.features)[candidates], budget,
                                      self.exact_up_to, self.finch)
        else:
            chosen = candidates[np.argsort(score[candidates], kind="stable")[:budget]]
        # too few predicted knowns: the lowest-scoring predicted unknowns
        chosen = fill_up(chosen, order[np.argsort(score[order], kind="stable")], budget)
        return Selection(outputs.indices[chosen], -score)

    @staticmethod
    def round_robin(candidates: np.ndarray, score: np.ndarray, features: np.ndarray, budget: int,
                    exact_up_to: Optional[int] = clustering.EXACT_NEIGHBOURS_UP_TO,
                    finch: str = clustering.DEFAULT_FINCH) -> np.ndarray:
        """The official pick: FINCH's finest partition with at most `budget` clusters, lowest scores in turns."""
        labels, counts, _ = clustering.partitions(features, exact_up_to=exact_up_to, finch=finch)
        level = 0
        while level < len(counts) - 1 and counts[level] > budget:
            level += 1
        cluster, number = labels[:, level], int(counts[level])
        remaining = min(budget, len(candidates))
        # at least one a pass: the official loop never ends when even the coarsest partition has more than B
        per_cluster = max(int(remaining / number), 1)
        # each cluster's members by score, lowest first, ties in candidate order: one sort, not one scan a cluster
        by_cluster = np.lexsort((score[candidates], cluster))
        orders = np.split(by_cluster, np.cumsum(np.bincount(cluster, minlength=number))[:-1])
        taken = [0] * number
        chosen = []
        while remaining > 0:
            before = remaining
            for c in range(number):
                share = min(per_cluster if remaining >= per_cluster else remaining, len(orders[c]) - taken[c])
                share = max(share, 0)
                picks = orders[c][taken[c]:taken[c] + share]
                taken[c] += len(picks)
                remaining -= len(picks)
                chosen.extend(candidates[picks].tolist())
            if remaining == before:  # every cluster is used up
                break
        return np.asarray(chosen, dtype=np.int64)
