"""Random sampling: the baseline every open-set method must beat."""

import numpy as np

from osal.strategies.base import PoolOutputs, Strategy


class RandomStrategy(Strategy):
    """Uniformly random pool examples; needs no model output."""

    needs = ()

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        return rng.random(len(outputs))
