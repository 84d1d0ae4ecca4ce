"""Oracles answer queries: a known class index, or UNKNOWN for anything else.

`Oracle` is the one interface. The research loop uses `SimulatedOracle`, which reads the
ground truth of the training split; an annotation project uses `HumanOracle`, whose
answers a person wrote into a sheet. Pools and strategies never know who answered:
`ActivePool.annotate` asks `oracle.answer(indices)` either way.
"""

from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import ArrayLike

UNKNOWN = -1


class Oracle(ABC):
    """Answers queries by global pool index: a class index in [0, num_known) or UNKNOWN."""

    num_known: int

    @abstractmethod
    def answer(self, indices: np.ndarray) -> np.ndarray:
        """One answer per index, in the order given."""


class SimulatedOracle(Oracle):
    """Answers from ground-truth labels: classes below `num_known` are known."""

    def __init__(self, labels: np.ndarray, num_known: int) -> None:
        self._labels = np.asarray(labels, dtype=np.int64)
        self.num_known = int(num_known)

    def answer(self, indices: np.ndarray) -> np.ndarray:
        labels = self._labels[np.asarray(indices, dtype=np.int64)]
        return np.where(labels < self.num_known, labels, UNKNOWN)


class HumanOracle(Oracle):
    """Answers a person gave (read from an answer sheet), keyed by global pool index.

    Asking about an index the person did not answer raises KeyError: a human oracle
    cannot be queried on the spot, so the answer files are checked before they are used.
    """

    def __init__(self, indices: ArrayLike, answers: ArrayLike, num_known: int) -> None:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        answers = np.asarray(answers, dtype=np.int64).reshape(-1)
        if len(indices) != len(answers):
            raise ValueError(f"{len(indices)} indices but {len(answers)} answers")
        self.num_known = int(num_known)
        bad = answers[(answers != UNKNOWN) & ((answers < 0) | (answers >= self.num_known))]
        if len(bad):
            raise ValueError(f"answer {bad[0]} is neither a known class in [0, {self.num_known}) nor UNKNOWN")
        self._answers = dict(zip(indices.tolist(), answers.tolist()))
        if len(self._answers) != len(indices):
            raise ValueError("an index was answered twice")

    def answer(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        missing = [i for i in indices.tolist() if i not in self._answers]
        if missing:
            raise KeyError(f"no answer for pool index {missing[0]} ({len(missing)} unanswered)")
        return np.array([self._answers[i] for i in indices.tolist()], dtype=np.int64)
