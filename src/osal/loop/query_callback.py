"""The query step as a Lightning Callback: once the query model is fit, pick and annotate a batch."""

import time

import lightning as L
import numpy as np

from osal.loop.inference import collect_outputs


class QueryCallback(L.Callback):
    """After fit: score the unlabeled pool, let the strategy choose, feed the choice to the oracle.

    The outcome (counts and seconds) is kept in `self.result` for the round's record.
    """

    def __init__(self, datamodule, strategy, budget: int, round_index: int, rng: np.random.Generator):
        self.datamodule, self.strategy = datamodule, strategy
        self.budget, self.round_index, self.rng = int(budget), int(round_index), rng
        self.result = None

    def on_fit_end(self, trainer, pl_module) -> None:
        dm = self.datamodule
        start = time.perf_counter()
        # Lightning has moved the module back to the CPU by now: score on the trainer's device
        outputs = collect_outputs(pl_module.net, dm, self.strategy, trainer.strategy.root_device)
        scored = time.perf_counter()
        chosen = np.asarray(self.strategy.select(outputs, min(self.budget, len(outputs)), self.rng))
        selected = time.perf_counter()
        answer = dm.annotate(chosen, self.round_index)
        self.result = {**answer, "inference_seconds": scored - start, "selection_seconds": selected - scored}
