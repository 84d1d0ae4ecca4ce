"""A query: score the unlabeled pool with a trained network, let the strategy choose, time both."""

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from osal.data.datamodule import PoolDataModule
from osal.engine.inference import collect_outputs
from osal.strategies.base import PoolOutputs, Selection, Strategy


@dataclass
class Query:
    """A strategy's choice from the pool, with the outputs it chose from and what each step cost."""

    selection: Selection
    outputs: PoolOutputs
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
    selection = strategy.query(outputs, min(int(budget), len(outputs)), rng)
    return Query(selection, outputs, scored - start, time.perf_counter() - scored)
