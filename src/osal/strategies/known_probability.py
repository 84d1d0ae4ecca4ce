"""Query by a binary detector's known probability (the paper's "Dichotomies" ablation of LfOSA)."""

import numpy as np

from osal.strategies.base import PoolOutputs, Strategy, softmax


class KnownProbabilityStrategy(Strategy):
    """The detector has two outputs (known, unknown); the most probably known first, no GMM."""

    query_model = "detector"
    needs = ("logits",)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        logits = np.asarray(outputs.logits, dtype=np.float64)
        if logits.shape[1] != 2:
            raise ValueError(f"a binary detector has 2 outputs, got {logits.shape[1]}")
        return softmax(logits)[:, 0]
