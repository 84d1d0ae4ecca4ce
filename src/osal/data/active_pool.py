"""The pool an active learner works on, kept apart from the loaders (in the spirit of baal's ActiveLearningDataset).

An ActivePool holds where every example stands (PoolState), what the oracle answered about it, and the
oracle itself; `annotate` is the one way labels come in. The research loop gives it a SimulatedOracle
(the training split's ground truth), an annotation project a HumanOracle (answers a person wrote down).
Loaders are built from it by osal.data.datamodule; it knows nothing of them.
"""

import os
from typing import Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from osal.data.oracle import UNKNOWN, Oracle
from osal.data.pool import PoolState

NOT_ASKED = -2  # answer slot of an example the oracle has not been asked about


class ActivePool:
    """Labeled, invalid and unlabeled examples of one pool by global index, with the answers that made them so.

    Args:
        size: examples in the pool (global indices 0..size-1).
        num_known: K, the known classes; labeled examples carry answers in [0, K).
        oracle: who answers `annotate`; may be set later (a person's answers arrive batch by batch).
    """

    def __init__(self, size: int, num_known: int, oracle: Optional[Oracle] = None) -> None:
        self.pool_state = PoolState(size)  # where each example stands, and since which round
        self.answers = np.full(size, NOT_ASKED, dtype=np.int64)
        self.num_known = int(num_known)
        self.oracle = oracle

    def __len__(self) -> int:
        return len(self.pool_state)

    # -- where the examples stand (derived from the state, never stored twice) ---------
    @property
    def labeled(self) -> np.ndarray:
        return self.pool_state.labeled

    @property
    def invalid(self) -> np.ndarray:
        return self.pool_state.invalid

    @property
    def unlabeled(self) -> np.ndarray:
        return self.pool_state.unlabeled

    @property
    def query_round(self) -> np.ndarray:
        """The round each example was queried in (-1 never, 0 the initial set)."""
        return self.pool_state.query_round

    def counts(self) -> dict:
        return self.pool_state.counts()

    def queried_in(self, round_index: int) -> np.ndarray:
        return self.pool_state.queried_in(round_index)

    # -- the one way labels come in --------------------------------------------------
    def annotate(self, indices: ArrayLike, round_index: int) -> dict:
        """Ask the oracle about `indices`: known ones join the labeled set, unknown ones the invalid set."""
        if self.oracle is None:
            raise RuntimeError("this pool has no oracle to ask; give it one (a SimulatedOracle or a HumanOracle)")
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        answers = self.oracle.answer(indices)
        self.pool_state.mark(indices, answers != UNKNOWN, round_index)
        self.answers[indices] = answers
        return {"queried": int(len(indices)), "queried_known": int((answers != UNKNOWN).sum())}

    def training_set(self, with_invalid: bool, unlabeled: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(global indices, targets) to train on: the labeled examples with their class and, `with_invalid`,
        the invalid ones as class K (the detector's extra output); `unlabeled` > 0: that many unlabeled examples
        too (all when fewer), drawn with `seed`, as target -1 (a self-supervised or negative-learning network's
        unlabeled data); -1: every unlabeled example."""
        indices = self.labeled
        targets = self.answers[indices]
        if with_invalid:
            invalid = self.invalid
            indices = np.concatenate([indices, invalid])
            targets = np.concatenate([targets, np.full(len(invalid), self.num_known)])
        if unlabeled:
            pool = self.unlabeled
            if 0 < unlabeled < len(pool):
                pool = np.sort(np.random.default_rng(seed).choice(pool, int(unlabeled), replace=False))
            indices = np.concatenate([indices, pool])
            targets = np.concatenate([targets, np.full(len(pool), -1)])
            # in index order: the same examples give the same training order whatever the round (a network fit
            # once per run on the whole pool is fit again alike when the run resumes)
            order = np.argsort(indices, kind="stable")
            indices, targets = indices[order], targets[order]
        return indices, targets

    # -- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**self.pool_state.state_dict(), "answers": self.answers.copy()}

    def load_state_dict(self, state: dict) -> None:
        answers = np.asarray(state["answers"], dtype=np.int64)
        if answers.shape != self.answers.shape:
            raise ValueError(f"answers have {answers.shape[0]} entries, this pool has {len(self)}")
        self.pool_state.load_state_dict(state)
        self.answers = answers.copy()

    def save(self, path: Union[str, os.PathLike]) -> None:
        """The pool state alone (pool_round_XX.npz), written atomically."""
        self.pool_state.save(path)
