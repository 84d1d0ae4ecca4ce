"""Query by a binary detector's known probability (the paper's "Dichotomies" ablation of LfOSA)."""

import numpy as np

from osal.strategies.base import PoolOutputs, Strategy, by_rows, softmax


class KnownProbabilityStrategy(Strategy):
    """The detector has two outputs (known, unknown); the most probably known first, no GMM."""

    query_model = "detector"
    needs = ("logits",)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        if outputs.logits.shape[1] != 2:
            raise ValueError(f"a binary detector has 2 outputs, got {outputs.logits.shape[1]}")
        return by_rows(lambda logits: softmax(logits)[:, 0], outputs.logits)
