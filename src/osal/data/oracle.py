"""Oracles answer queries: a known class index, or UNKNOWN for anything else.

The research loop uses `SimulatedOracle`, which reads the ground truth of the
training split. A human oracle (a person filling in a sheet) implements the same
`answer` method, so pools and strategies never know who answered.
"""

import numpy as np

UNKNOWN = -1


class SimulatedOracle:
    """Answers from ground-truth labels: classes below `num_known` are known."""

    def __init__(self, labels: np.ndarray, num_known: int):
        self._labels = np.asarray(labels, dtype=np.int64)
        self.num_known = int(num_known)

    def answer(self, indices: np.ndarray) -> np.ndarray:
        labels = self._labels[np.asarray(indices, dtype=np.int64)]
        return np.where(labels < self.num_known, labels, UNKNOWN)
