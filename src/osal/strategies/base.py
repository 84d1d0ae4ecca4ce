"""The strategy contract: predictions in, global indices out, highest priority first."""

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class PoolOutputs:
    """What inference on the unlabeled pool produced, row i belonging to global index `indices[i]`.

    `logits` are the query model's raw outputs (K for the classifier, K+1 for the
    detector, whose last column is the unknown class); `features` its penultimate
    activations. A strategy reads only what it lists in `needs`.
    """

    indices: np.ndarray
    num_known: int
    logits: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None

    def __post_init__(self):
        self.indices = np.asarray(self.indices, dtype=np.int64)
        for name in ("logits", "features"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.indices):
                raise ValueError(f"{name} has {len(value)} rows for {len(self.indices)} pool indices")

    def __len__(self) -> int:
        return len(self.indices)


class Strategy:
    """Base of every strategy.

    Attributes:
        query_model: "detector" (a K+1-way net fit on labeled + invalid) or "classifier"
            (the K-way net fit on labeled) - the model whose pool outputs `select` reads.
        needs: what inference must produce: a subset of {"logits", "features"}; empty
            means no inference at all.
    """

    query_model = "classifier"
    needs: tuple = ("logits",)

    def select(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> np.ndarray:
        """Global indices of min(budget, len(outputs)) distinct pool examples, highest priority first."""
        raise NotImplementedError


def rank_descending(keys, rng: np.random.Generator) -> np.ndarray:
    """Positions sorted by `keys` (first key most significant), largest first; exact ties broken by `rng`."""
    tiebreak = rng.random(len(keys[0]))
    # np.lexsort sorts by its last key first and ascending: reverse the keys and negate them
    return np.lexsort([-tiebreak] + [-np.asarray(k, dtype=np.float64) for k in reversed(keys)])


def take_top(outputs: PoolOutputs, order: np.ndarray, budget: int) -> np.ndarray:
    if budget < 0:
        raise ValueError(f"budget must be non-negative, got {budget}")
    return outputs.indices[order[:budget]]
