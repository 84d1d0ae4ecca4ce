"""Pool state: one array over the training split, everything else derived.

`state[i]` says where training example i stands (unlabeled, labeled, invalid);
`query_round[i]` says in which round it was queried (-1 never, 0 the initial set).
Masks, counts and index lists are computed from these two arrays and never
stored twice, so they cannot disagree.
"""

import os
from typing import Union

import numpy as np
from numpy.typing import ArrayLike

from osal.atomic import atomic_write

UNLABELED, LABELED, INVALID = 0, 1, 2
NEVER = -1


class PoolState:
    """Labeled / invalid / unlabeled state of every training example, by global index."""

    def __init__(self, size: int) -> None:
        self.state = np.full(size, UNLABELED, dtype=np.int8)
        self.query_round = np.full(size, NEVER, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.state)

    # -- derived views ---------------------------------------------------------------
    def indices(self, which: int) -> np.ndarray:
        return np.flatnonzero(self.state == which)

    @property
    def labeled(self) -> np.ndarray:
        return self.indices(LABELED)

    @property
    def invalid(self) -> np.ndarray:
        return self.indices(INVALID)

    @property
    def unlabeled(self) -> np.ndarray:
        return self.indices(UNLABELED)

    def counts(self) -> dict:
        n = np.bincount(self.state, minlength=3)
        return {"n_labeled": int(n[LABELED]), "n_invalid": int(n[INVALID]), "n_unlabeled": int(n[UNLABELED])}

    def queried_in(self, round_index: int) -> np.ndarray:
        return np.flatnonzero(self.query_round == round_index)

    # -- the one mutation ------------------------------------------------------------
    def mark(self, indices: ArrayLike, is_known: ArrayLike, round_index: int) -> None:
        """Record the oracle's answers: known examples become labeled, the others invalid.

        Raises ValueError (and changes nothing) if an index is out of range, repeated,
        or was already queried: every example is queried at most once.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        is_known = np.asarray(is_known, dtype=bool).reshape(-1)
        if len(indices) != len(is_known):
            raise ValueError(f"{len(indices)} indices but {len(is_known)} answers")
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise ValueError(f"indices must lie in [0, {len(self)}), got min {indices.min()} max {indices.max()}")
        if len(np.unique(indices)) != len(indices):
            raise ValueError("the same example was queried twice in one batch")
        already = indices[self.state[indices] != UNLABELED]
        if len(already):
            raise ValueError(f"{len(already)} examples were queried before (e.g. index {already[0]}); "
                             "every example is queried at most once")
        self.state[indices] = np.where(is_known, LABELED, INVALID)
        self.query_round[indices] = round_index

    # -- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"state": self.state.copy(), "query_round": self.query_round.copy()}

    def load_state_dict(self, state: dict) -> None:
        new_state = np.asarray(state["state"], dtype=np.int8)
        new_round = np.asarray(state["query_round"], dtype=np.int32)
        if new_state.shape != self.state.shape or new_round.shape != self.state.shape:
            raise ValueError(f"pool state has {new_state.shape[0]} entries, this pool has {len(self)}")
        if not np.isin(new_state, (UNLABELED, LABELED, INVALID)).all():
            raise ValueError("pool state holds values other than unlabeled/labeled/invalid")
        if ((new_state == UNLABELED) != (new_round == NEVER)).any():
            raise ValueError("pool state is inconsistent: an example is unlabeled but has a query round, or vice versa")
        self.state, self.query_round = new_state.copy(), new_round.copy()

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Written atomically: an interrupted save leaves the previous file (or none), never half of one."""
        atomic_write(path, lambda f: np.savez_compressed(f, **self.state_dict()))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "PoolState":
        with np.load(path) as data:
            pool = cls(len(data["state"]))
            pool.load_state_dict({k: data[k] for k in ("state", "query_round")})
        return pool
