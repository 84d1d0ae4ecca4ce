"""Core-set selection (Sener & Savarese, ICLR 2018): greedy k-center on penultimate features."""

import numpy as np

from osal.strategies.base import ROWS, PoolOutputs, Selection, Strategy, checked_budget


class CoresetStrategy(Strategy):
    """Greedy 2-approximation of k-center: repeatedly take the pool example farthest from every center.

    Choices: the labeled set's features are the initial centers (the paper's s^0); the
    robust (MIP) refinement of the paper is not run, as in most re-implementations;
    Euclidean distance on the classifier's penultimate features. Memory stays O(pool):
    distances to the labeled centers are taken for 65,536 pool rows and `chunk_size` centers at a
    time and only each example's distance to its nearest center is kept; no pool x pool (or pool x
    chunk) matrix exists.
    """

    needs = ("features", "labeled_features")

    def __init__(self, chunk_size: int = 256) -> None:
        self.chunk_size = int(chunk_size)

    def nearest_center_distances(self, features: np.ndarray, centers: np.ndarray) -> np.ndarray:
        """Squared distance from each row of `features` to its nearest row of `centers`, chunk by chunk."""
        nearest = np.full(len(features), np.inf, dtype=np.float32)
        for row in range(0, len(features), ROWS):  # rows x chunk floats at a time, whatever the pool
            block = features[row:row + ROWS]
            squared = np.einsum("ij,ij->i", block, block)
            for start in range(0, len(centers), self.chunk_size):
                chunk = centers[start:start + self.chunk_size]
                d = block @ chunk.T  # the only block x chunk array; the rest is done in place
                d *= -2.0
                d += squared[:, None]
                d += np.einsum("ij,ij->i", chunk, chunk)[None, :]
                np.minimum(nearest[row:row + ROWS], d.min(axis=1), out=nearest[row:row + ROWS])
                del d  # before the next chunk's product, not after it
        return np.maximum(nearest, 0.0)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        """Distance to the nearest labeled example (the first greedy step's criterion)."""
        features = np.asarray(outputs.features, dtype=np.float32)
        labeled = outputs.labeled_features
        if labeled is None or len(labeled) == 0:
            return np.zeros(len(features), dtype=np.float32)
        return self.nearest_center_distances(features, np.asarray(labeled, dtype=np.float32))

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        """Greedy k-center picks; `scores` are the squared distances to the labeled set before the first pick."""
        features = np.asarray(outputs.features, dtype=np.float32)
        budget = checked_budget(outputs, budget)
        if budget == 0:
            return Selection(outputs.indices[:0], self.scores(outputs, rng))
        squared = np.einsum("ij,ij->i", features, features)
        nearest = self.scores(outputs, rng)
        scores = nearest.copy()
        if outputs.labeled_features is None or len(outputs.labeled_features) == 0:
            nearest[:] = np.inf  # no centers yet: the first pick is random (below)
        chosen = np.empty(budget, dtype=np.int64)
        for step in range(budget):
            best = np.flatnonzero(nearest == nearest.max())
            pick = best[0] if len(best) == 1 else rng.choice(best)
            chosen[step] = pick
            d = squared + squared[pick] - 2.0 * (features @ features[pick])
            np.minimum(nearest, np.maximum(d, 0.0), out=nearest)
            nearest[pick] = -1.0  # taken: never the farthest again
        return Selection(outputs.indices[chosen], scores)
