"""The query step as a Lightning Callback: once the query model is fit, pick and annotate a batch."""

from typing import Optional

import lightning as L
import numpy as np
import torch

from osal.data.datamodule import PoolDataModule
from osal.engine.query import query_pool
from osal.strategies.base import Strategy


class QueryCallback(L.Callback):
    """After fit: score the unlabeled pool, let the strategy choose, feed the choice to the pool's oracle.

    The outcome (counts and seconds) is kept in `self.result` for the round's record, and told to the
    strategy (`observe`). `classifier`: the network of the classifier trained on the same labels, for a
    detector-based strategy that needs its outputs too.
    """

    def __init__(self, datamodule: PoolDataModule, strategy: Strategy, budget: int, round_index: int,
                 rng: np.random.Generator, classifier: Optional[torch.nn.Module] = None):
        self.datamodule, self.strategy = datamodule, strategy
        self.budget, self.round_index, self.rng = int(budget), int(round_index), rng
        self.classifier = classifier
        self.result = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning has moved the module back to the CPU by now: score on the trainer's device
        self.ask(pl_module.net, trainer.strategy.root_device)

    def ask(self, network: torch.nn.Module, device: torch.device) -> None:
        """Query with a trained network (also without a fit: a detector fit once per run), then tell the strategy
        the answers."""
        query = query_pool(network, self.datamodule, self.strategy, self.budget, self.rng, device, self.classifier)
        answer = self.datamodule.pool.annotate(query.selection.indices, self.round_index)
        self.strategy.observe(answer["queried"], answer["queried_known"])
        chosen = np.asarray(query.selection.indices, dtype=np.int64)
        self.strategy.learn(chosen, self.datamodule.pool.answers[chosen])
        self.result = {**answer, "inference_seconds": query.inference_seconds,
                       "selection_seconds": query.selection_seconds}
