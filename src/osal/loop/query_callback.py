"""The query step as a Lightning Callback: once the query model is fit, pick and annotate a batch."""

import lightning as L
import numpy as np

from osal.data.datamodule import PoolDataModule
from osal.engine.query import query_pool
from osal.strategies.base import Strategy


class QueryCallback(L.Callback):
    """After fit: score the unlabeled pool, let the strategy choose, feed the choice to the pool's oracle.

    The outcome (counts and seconds) is kept in `self.result` for the round's record.
    """

    def __init__(self, datamodule: PoolDataModule, strategy: Strategy, budget: int, round_index: int,
                 rng: np.random.Generator):
        self.datamodule, self.strategy = datamodule, strategy
        self.budget, self.round_index, self.rng = int(budget), int(round_index), rng
        self.result = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning has moved the module back to the CPU by now: score on the trainer's device
        query = query_pool(pl_module.net, self.datamodule, self.strategy, self.budget, self.rng,
                           trainer.strategy.root_device)
        answer = self.datamodule.pool.annotate(query.selection.indices, self.round_index)
        self.result = {**answer, "inference_seconds": query.inference_seconds,
                       "selection_seconds": query.selection_seconds}
