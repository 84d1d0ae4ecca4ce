"""Random sampling: the baseline every open-set method must beat."""

import numpy as np

from osal.strategies.base import PoolOutputs, Strategy, take_top


class RandomStrategy(Strategy):
    """Uniformly random pool examples; needs no model output."""

    needs = ()

    def select(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> np.ndarray:
        return take_top(outputs, rng.permutation(len(outputs)), budget)
