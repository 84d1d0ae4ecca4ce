"""The two networks of an annotation project: fit on the current labels, kept in models/, reloaded.

A K+1-way detector (labeled + `unknown` answers as class K) says which images look unknown;
a K-way classifier suggests a class. Each fit is seeded from (seed, batch number, role),
as the research loop seeds its rounds, so the same labels always give the same weights.
"""

import logging
import os

import lightning as L
import torch
from omegaconf import DictConfig

from osal.annotate.project import AnnotationError, Project
from osal.atomic import atomic_write
from osal.data.datamodule import PoolDataModule
from osal.engine.fit import build_module, fit_role
from osal.engine.roles import role_config

log = logging.getLogger(__name__)

ROLES = ("detector", "classifier")


def new_module(cfg: DictConfig, role: str, num_known: int) -> L.LightningModule:
    module = build_module(cfg, role, num_known)
    if role == "detector" and module.num_outputs != num_known + 1:
        raise AnnotationError(f"strategy {cfg.strategy.name}'s detector has {module.num_outputs} outputs; "
                              f"annotation needs a K+1-way detector ({num_known + 1} outputs): use strategy=lfosa "
                              "or a strategy without a detector")
    return module


class EpochLog(L.Callback):
    """One log line every fifth of the epochs: a long fit shows it is moving."""

    def __init__(self, role: str, examples: int):
        self.role, self.examples = role, examples

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        if epoch == total or epoch % max(1, total // 5) == 0:
            loss = trainer.callback_metrics.get("train_loss")
            log.info("  %s on %d images: epoch %d/%d, loss %s", self.role, self.examples, epoch, total,
                     "-" if loss is None else f"{float(loss):.3f}")


def fit(cfg: DictConfig, role: str, datamodule: PoolDataModule, round_index: int, directory: str) -> L.LightningModule:
    """A fresh module of `role` fit on the datamodule's current labels (the engine's fit, seeded per batch)."""
    _, with_invalid = role_config(cfg, role)
    examples = len(datamodule.pool.training_set(with_invalid)[0])
    return fit_role(cfg, role, round_index, datamodule, [EpochLog(role, examples)], root_dir=directory).module


def model_path(project: Project, role: str) -> str:
    return project.path("models", f"{role}.pt")


def current_models(project: Project, datamodule: PoolDataModule) -> dict[str, torch.nn.Module]:
    """{role: network} trained on the project's current labels: loaded from models/ or fit now and saved."""
    version = project.labels_version
    round_index = len(project.batches) + 1  # the seeds `next` uses for the batch after the current labels
    os.makedirs(project.path("models"), exist_ok=True)
    networks = {}
    for role in ROLES:
        path = model_path(project, role)
        saved = torch.load(path, map_location="cpu", weights_only=True) if os.path.exists(path) else None
        module = new_module(project.cfg, role, project.num_known)
        if saved is not None and saved["labels_version"] == version:
            module.net.load_state_dict(saved["state_dict"])
        else:
            log.info("training the %s on %d labeled + %d unknown answers", role, len(project.pool.labeled),
                     len(project.pool.invalid))
            datamodule.setup("fit")
            module = fit(project.cfg, role, datamodule, round_index, project.directory)
            state = {"labels_version": version, "role": role, "state_dict": module.net.state_dict()}
            atomic_write(path, lambda f, state=state: torch.save(state, f))
        networks[role] = module.net.eval()
    return networks
