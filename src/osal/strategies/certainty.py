"""Certainty sampling: the lowest predictive entropy (the paper's "Certainty" baseline)."""

import numpy as np

from osal.strategies.base import PoolOutputs, Strategy, by_rows, entropy, softmax


class CertaintyStrategy(Strategy):
    """Entropy of the classifier's softmax, most confident first (the opposite of Uncertainty).

    The paper lists it beside Uncertainty with the same references (Lewis & Gale 1994;
    Luo et al. 2013): the same entropy, queried from the other end.
    """

    needs = ("logits",)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        return -by_rows(lambda logits: entropy(softmax(logits)), outputs.logits)
