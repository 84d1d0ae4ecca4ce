"""Uncertainty sampling (Lewis & Gale 1994): the highest predictive entropy of the classifier."""

import numpy as np

from osal.strategies.base import PoolOutputs, Strategy, by_rows, entropy, softmax


class UncertaintyStrategy(Strategy):
    """Entropy of the classifier's softmax over the K known classes; most uncertain first."""

    needs = ("logits",)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        return by_rows(lambda logits: entropy(softmax(logits)), outputs.logits)
