"""A query: score the unlabeled pool with a trained network, let the strategy choose, time both.

Under DDP every process scores its share, the main process chooses from the gathered outputs, and every
process gets the choice and the query generator's new state: the processes stay in step.
"""

import logging
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from osal.data.datamodule import PoolDataModule
from osal.engine import distributed
from osal.engine.inference import collect_outputs
from osal.strategies.base import PoolOutputs, Selection, Strategy

log = logging.getLogger(__name__)


@dataclass
class Query:
    """A strategy's choice from the pool, with the outputs it chose from and what each step cost (under DDP the
    outputs and the scores are the main process's alone: None elsewhere)."""

    selection: Selection
    outputs: Optional[PoolOutputs]
    inference_seconds: float
    selection_seconds: float


def query_pool(network: torch.nn.Module, datamodule: PoolDataModule, strategy: Strategy, budget: int,
               rng: np.random.Generator, device: torch.device, classifier: Optional[torch.nn.Module] = None) -> Query:
    """Score the datamodule's unlabeled pool for what `strategy` needs and choose min(budget, pool) examples.

    `classifier`: the classifier trained on the same labels, for a detector-based strategy that also reads it.
    """
    start = time.perf_counter()
    outputs = collect_outputs(network, datamodule, strategy, device, classifier)
    scored = time.perf_counter()
    selection = None
    if outputs is not None:  # the main process (or the only one)
        selection = strategy.query(outputs, min(int(budget), len(outputs)), rng)
    if distributed.active():
        if outputs is not None and outputs.scored_by_rank is not None:
            shares = " + ".join(f"{n:,}" for n in outputs.scored_by_rank)
            log.info("%s pool examples scored by %d processes (%s), each once", f"{len(outputs):,}",
                     len(outputs.scored_by_rank), shares)
        chosen = (selection.indices, rng.bit_generator.state) if selection is not None else None
        indices, rng_state = distributed.broadcast_from_main(chosen)
        rng.bit_generator.state = rng_state
        if selection is None:
            selection = Selection(indices, None)
    return Query(selection, outputs, scored - start, time.perf_counter() - scored)
