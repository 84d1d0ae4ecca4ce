"""Fit one role's module (detector or classifier) on a datamodule's current labels, seeded per fit."""

import time
from dataclasses import dataclass
from typing import Iterable, Optional

import lightning as L
import torch
from omegaconf import DictConfig

from osal.build import build
from osal.data.datamodule import PoolDataModule
from osal.engine import distributed
from osal.engine.inference import inference_device
from osal.engine.roles import fit_seed, role_config, unlabeled_examples


@dataclass
class Fit:
    """A finished fit: the trained module, its Trainer (for `test`, and the device it ran on), seconds spent."""

    module: L.LightningModule
    trainer: L.Trainer
    seconds: float


def build_trainer(trainer_cfg: DictConfig, callbacks: Iterable[L.Callback] = (),
                  root_dir: Optional[str] = None, progress_bar: Optional[bool] = None) -> L.Trainer:
    """A fresh Trainer from the `trainer` config; osal writes its own records, so Lightning logs nothing.
    `progress_bar` overrides trainer.enable_progress_bar (no live bar where output goes to a file).

    The datamodule splits every set between DDP processes itself (no padded duplicates in testing), so
    Lightning's own DistributedSampler is off; in a DDP run the Trainer joins the run's process group.
    """
    overrides = {} if progress_bar is None else {"enable_progress_bar": bool(progress_bar)}
    if distributed.active():
        if trainer_cfg.get("strategy", "auto") == "auto":
            overrides["strategy"] = "ddp"
        if trainer_cfg.get("sync_batchnorm") and inference_device(trainer_cfg).type != "cuda":
            overrides["sync_batchnorm"] = False  # torch syncs BatchNorm on GPUs only: on CPUs each process its own
    return build(trainer_cfg, callbacks=list(callbacks), logger=False, default_root_dir=root_dir,
                 use_distributed_sampler=False, **overrides)


def build_module(cfg: DictConfig, role: str, num_known: int) -> L.LightningModule:
    """A fresh, untrained module of `role` for `num_known` known classes."""
    module_cfg, _ = role_config(cfg, role)
    return build(module_cfg)(num_known=num_known)


def fit_role(cfg: DictConfig, role: str, round_index: int, datamodule: PoolDataModule,
             callbacks: Iterable[L.Callback] = (), root_dir: Optional[str] = None,
             progress_bar: Optional[bool] = None, start_from: Optional[torch.nn.Module] = None) -> Fit:
    """Fit a fresh module of `role` on what the datamodule's pool holds now.

    The fit's seed comes from (cfg.seed, round_index, role) alone, so a round's weights do not depend
    on how earlier rounds ran; the role says whether the invalid set is trained on as class K, and how many
    unlabeled examples as target -1. `start_from`: a trained network (the round's classifier) handed to a
    module that continues from it (one with a `start_from` method: BUAL's negative-learning network).
    """
    seed = fit_seed(cfg.seed, round_index, role)
    L.seed_everything(seed, workers=True, verbose=False)
    _, with_invalid = role_config(cfg, role)
    datamodule.begin_fit(seed, with_invalid=with_invalid, unlabeled=unlabeled_examples(cfg, role))
    module = build_module(cfg, role, datamodule.num_known)
    if start_from is not None and hasattr(module, "start_from"):
        module.start_from(start_from)
    trainer = build_trainer(cfg.trainer, callbacks, root_dir, progress_bar)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return Fit(module, trainer, time.perf_counter() - start)
