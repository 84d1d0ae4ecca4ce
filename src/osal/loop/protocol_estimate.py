"""How long a whole run should take on this machine, said before round 0 (issue 26): a short probe of the
classifier's training steps and one inference batch, times the protocol's schedule of labeled sizes.

A round's work is its fits (the classifier on the labeled set, and a detector-based strategy's detector on the
labeled and invalid sets of the round before) and its query's inference over the unlabeled pool, plus the test.
The probe measures seconds per training example (a few steps of real batches, augmentation included, after one
warm-up step) and seconds per inferred example (one batch, after a warm-up pass), on the device the run trains
on. The schedule assumes every query returns a full batch of knowns: the labeled set, the largest fit, grows
fastest then, so the estimate leans long. Once rounds are timed, the loop's round table takes over from the
probe with the cost model of osal.loop.round_estimate (the same model a deadline and the campaign use).
"""

import time
from dataclasses import dataclass
from itertools import cycle, islice
from typing import Optional

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from osal.data.datamodule import PoolDataModule
from osal.engine.fit import build_module, build_trainer
from osal.engine.inference import inference_batch, inference_device, prepare_for_inference
from osal.engine.roles import fits_once, role_config, unlabeled_examples
from osal.loop.round_estimate import MARGIN, FitSchedule, fit_schedule

LONG = 2 * 3600.0  # beyond this, the faster ways are named
PROBE_STEPS = 2  # timed training steps (after a warm-up step): a ResNet18 on a CPU takes seconds a step
INFERENCE_ROWS = 256  # examples of the timed inference batch


@dataclass(frozen=True)
class Probe:
    """What a few steps on this machine cost: training seconds per example, the fixed seconds of a fit's epoch
    (Lightning's loop, hooks and loaders), the fixed seconds of a fit or a test (a fresh Trainer, its start and
    end) and inference seconds per example."""

    train_seconds_per_example: float
    inference_seconds_per_example: float
    epoch_seconds: float = 0.0
    fit_seconds: float = 0.0


class EpochTimes(L.Callback):
    """The wall time and the examples of every training epoch of a fit."""

    def __init__(self) -> None:
        self.epochs: list[tuple[float, int]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._started, self._examples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: object, batch: tuple,
                           batch_idx: int) -> None:
        self._examples += len(batch[1])

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.epochs.append((time.perf_counter() - self._started, self._examples))


def probe(cfg: DictConfig, datamodule: PoolDataModule, steps: int = PROBE_STEPS) -> Probe:
    """Time `steps` training steps of a fresh classifier on real (augmented) batches of the initial set, a short
    Lightning fit (2 epochs of one batch, the first not counted) for the fixed cost of an epoch and of a fit, and
    one inference batch of the pool, each after a warm-up: about 10 batches of work, under a minute for a
    ResNet18 on 2 CPU cores. Nothing of the run is changed: every fit reseeds the generators it uses, and the
    probe's modules are thrown away."""
    per_example = training_seconds(cfg, datamodule, steps)
    times = EpochTimes()
    trainer_cfg = OmegaConf.create({**OmegaConf.to_container(cfg.trainer, resolve=True),
                                    "max_epochs": 2, "max_steps": -1, "limit_train_batches": 1})
    started = time.perf_counter()
    trainer = build_trainer(trainer_cfg, [times], progress_bar=False)
    module = build_module(cfg, "classifier", datamodule.num_known)
    datamodule.begin_fit(0, with_invalid=False)
    trainer.fit(module, datamodule=datamodule)
    whole = time.perf_counter() - started
    fixed = [max(seconds - examples * per_example, 0.0) for seconds, examples in times.epochs[1:]]
    per_fit = max(whole - sum(seconds for seconds, _ in times.epochs), 0.0)
    return Probe(per_example, inference_seconds(cfg, datamodule, module.net), sum(fixed) / max(len(fixed), 1),
                 per_fit)


def training_seconds(cfg: DictConfig, datamodule: PoolDataModule, steps: int) -> float:
    """Seconds per training example: `steps` optimiser steps on real batches, after one warm-up step."""
    device = inference_device(cfg.trainer)
    datamodule.setup("fit")
    datamodule.begin_fit(0, with_invalid=False)
    module = build_module(cfg, "classifier", datamodule.num_known).to(device)
    module.on_fit_start()
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    module.train()
    batches = cycle(list(islice(datamodule.training_batches(device), steps + 1)))
    examples, started = 0, None
    for step in range(steps + 1):
        x, y, index = next(batches)
        loss = module.batch_loss(x, y, index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 0:  # the first step allocates and warms caches: not timed
            synchronize(device)
            started = time.perf_counter()
        else:
            examples += len(y)
    synchronize(device)
    return (time.perf_counter() - started) / max(examples, 1)


def inference_seconds(cfg: DictConfig, datamodule: PoolDataModule, network: torch.nn.Module) -> float:
    """Seconds per example of one inference batch of the pool, after a warm-up pass of it."""
    device = inference_device(cfg.trainer)
    x = next(iter(datamodule.pool_dataloader()))[0][:INFERENCE_ROWS]
    network = prepare_for_inference(network, device)  # as a query runs it (eval, channels_last)
    with torch.inference_mode():
        x = inference_batch(x, device)
        network.forward_features(x)
        synchronize(device)
        started = time.perf_counter()
        network.forward_features(x)
        synchronize(device)
    return (time.perf_counter() - started) / max(len(x), 1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Protocol:
    """What a run will do: its schedule of fits and the sizes that decide their cost."""

    rounds: int
    query_size: int
    initial: int
    pool: int  # unlabeled examples at the start
    test: int  # examples tested after every round
    schedule: FitSchedule
    with_detector: bool
    inference_passes: float = 1.0  # pool passes a query makes (a strategy that also reads the classifier: 2)
    detector_unlabeled: int = 0  # unlabeled examples the detector also trains on (-1: all; detector.train_on_unlabeled)
    detector_once: bool = False  # detector.fit_once: one detector fit in the whole run
    detector_cost: float = 1.0  # a detector step's cost over a classifier step's (MQNet's 8 views, BUAL's 2 networks)
    known_in_pool: Optional[int] = None  # known examples in the unlabeled pool, where the run knows it (research runs)


def protocol_of(cfg: DictConfig, datamodule: PoolDataModule, with_detector: bool, needs: tuple,
                known_in_pool: Optional[int] = None) -> Protocol:
    """The run's protocol, with what its strategy's detector adds: its own training set and step cost
    (`relative_step_cost` of the module class) and the pool passes of its query (`query_passes(epochs)`)."""
    pool = datamodule.pool
    test = 0 if datamodule.known_test is None else len(datamodule.known_test)
    return protocol_of_sizes(cfg, len(pool.labeled), len(pool.unlabeled), test, with_detector, needs, known_in_pool)


def protocol_of_sizes(cfg: DictConfig, initial: int, pool: int, test: int, with_detector: bool, needs: tuple,
                      known_in_pool: Optional[int] = None) -> Protocol:
    """The protocol of `cfg` on a pool of these sizes (what a campaign's status reads from a started run of the
    same data, for runs not started yet)."""
    schedule = fit_schedule(cfg)
    # a strategy that needs nothing (random) runs no inference at all
    passes, unlabeled, once, cost = (1.0 + ("classifier_logits" in needs)) if needs else 0.0, 0, False, 1.0
    if with_detector:
        module_cfg, _ = role_config(cfg, "detector")
        module = get_class(module_cfg._target_)
        cost = float(getattr(module, "relative_step_cost", 1.0))
        query_passes = getattr(module, "query_passes", None)
        if query_passes is not None:
            passes += query_passes(schedule.epochs, **{k: module_cfg[k] for k in ("check_every",) if k in module_cfg})
            passes -= 1.0
        unlabeled, once = unlabeled_examples(cfg, "detector"), fits_once(cfg, "detector")
    return Protocol(int(cfg.al.rounds), int(cfg.al.query_size), int(initial), int(pool), int(test),
                    schedule, with_detector, passes, unlabeled, once, cost, known_in_pool)


TRAINING_ONLY = Probe(train_seconds_per_example=1.0, inference_seconds_per_example=0.0)


def training_work(protocol: Protocol) -> float:
    """The whole run's training example-epochs, a detector's weighted by its step cost, halfway between queries as
    mixed as the pool and every query known (the unit a campaign's status divides by the images/s its runs show)."""
    low, high = (whole_run_seconds(protocol, TRAINING_ONLY, share) / MARGIN for share in (
        protocol.known_in_pool / protocol.pool if protocol.known_in_pool is not None and protocol.pool else 1.0, 1.0))
    return (low + high) / 2


def fit_seconds(schedule: FitSchedule, examples: float, measured: Probe) -> float:
    """One fit on `examples`: its epochs of examples, each epoch's fixed cost and the fit's own."""
    epochs = schedule.epochs_for(examples)
    return epochs * (examples * measured.train_seconds_per_example + measured.epoch_seconds) + measured.fit_seconds


def round_seconds(protocol: Protocol, measured: Probe, known_share: float = 1.0) -> list[float]:
    """Seconds of every round 0..R (without MARGIN), `known_share` of every query known (the labeled set, which
    the classifier trains on, never holding more than the pool's knowns where they are known)."""
    out = []
    inferred = measured.inference_seconds_per_example
    cap = float("inf") if protocol.known_in_pool is None else protocol.known_in_pool
    for r in range(protocol.rounds + 1):
        queried = min(r * protocol.query_size, protocol.pool)
        labeled = protocol.initial + min(known_share * queried, cap)
        # the classifier's fit, and its test (a fresh Trainer too)
        seconds = fit_seconds(protocol.schedule, labeled, measured) + protocol.test * inferred + measured.fit_seconds
        if r > 0:
            unlabeled = protocol.pool - min((r - 1) * protocol.query_size, protocol.pool)
            seconds += protocol.inference_passes * unlabeled * inferred
            if protocol.with_detector and (r == 1 or not protocol.detector_once):
                trained = protocol.initial + min((r - 1) * protocol.query_size, protocol.pool)
                extra = unlabeled if protocol.detector_unlabeled < 0 else min(protocol.detector_unlabeled, unlabeled)
                seconds += protocol.detector_cost * fit_seconds(protocol.schedule, trained + extra, measured)
        out.append(seconds)
    return out


def whole_run_seconds(protocol: Protocol, measured: Probe, known_share: float = 1.0) -> float:
    return sum(round_seconds(protocol, measured, known_share)) * MARGIN


def estimate_range(protocol: Protocol, measured: Probe) -> tuple[float, float]:
    """(the whole run's seconds if its queries are as mixed as the pool, if every query is known): a strategy's
    precision, which decides how large the classifier's training set grows, lies between (or beyond, when it is
    worse than chance). Without the pool's known count, both are the second."""
    high = whole_run_seconds(protocol, measured)
    if protocol.known_in_pool is None or protocol.pool == 0:
        return high, high
    return whole_run_seconds(protocol, measured, protocol.known_in_pool / protocol.pool), high


def describe(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 12 min, 3.5 h, 2.3 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def estimate_lines(protocol: Protocol, measured: Probe, device: str, on_gpu: bool, frozen: bool = False) -> list[str]:
    """What a run says before round 0: the estimate, and past LONG the faster ways (`frozen`: the run already
    trains heads on frozen features)."""
    low, total = estimate_range(protocol, measured)
    about = describe(total)
    if describe(low) != about:
        about = f"{describe(low)} (queries as mixed as the pool) to {about} (every query known)"
    lines = [f"estimate: the whole run ({protocol.rounds} queries of {protocol.query_size:,}, "
             f"{protocol.schedule.epochs} epochs a fit) should take about {about} on this machine's "
             f"{device} (probe: {1 / measured.train_seconds_per_example:,.0f} training images/s, "
             f"{1 / measured.inference_seconds_per_example:,.0f} inferred/s)"]
    if total > LONG:
        faster = [] if on_gpu else ["trainer=gpu on a machine with a GPU"]
        faster += ["a shorter protocol (al.rounds, al.query_size, trainer.max_epochs)"]
        if not frozen:
            faster += ["frozen features of a pretrained backbone (model.pretrained=... model.freeze=true)"]
        lines.append("faster: " + ", or ".join(faster))
    return lines

