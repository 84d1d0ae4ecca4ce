"""The two networks of an annotation project: fit on the current labels, kept in models/, reloaded.

A K+1-way detector (labeled + `unknown` answers as class K) says which images look unknown;
a K-way classifier suggests a class. Each fit is seeded from (seed, batch number, role),
as the research loop seeds its rounds, so the same labels always give the same weights.
"""

import logging
import os

import lightning as L
import numpy as np
import torch

from osal.annotate.project import AnnotationError
from osal.atomic import atomic_write
from osal.build import build
from osal.loop.roles import fit_seed, role_config
from osal.strategies.lfosa import LfOSA

log = logging.getLogger(__name__)

ROLES = ("detector", "classifier")


class LOGITS:
    """A `needs` for collect_outputs: the pool's logits only."""
    needs, mc_samples = ("logits",), 0


def new_module(cfg, role: str, num_known: int):
    module_cfg, _ = role_config(cfg, role)
    module = build(module_cfg)(num_known=num_known)
    if role == "detector" and module.num_outputs != num_known + 1:
        raise AnnotationError(f"strategy {cfg.strategy.name}'s detector has {module.num_outputs} outputs; "
                              f"annotation needs a K+1-way detector ({num_known + 1} outputs): use strategy=lfosa "
                              "or a strategy without a detector")
    return module


class EpochLog(L.Callback):
    """One log line every fifth of the epochs: a long fit shows it is moving."""

    def __init__(self, role: str, examples: int):
        self.role, self.examples = role, examples

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        if epoch == total or epoch % max(1, total // 5) == 0:
            loss = trainer.callback_metrics.get("train_loss")
            log.info("  %s on %d images: epoch %d/%d, loss %s", self.role, self.examples, epoch, total,
                     "-" if loss is None else f"{float(loss):.3f}")


def fit(cfg, role: str, datamodule, round_index: int, directory: str):
    """A fresh module of `role` fit on the datamodule's current labels; returns (module, device it ran on)."""
    seed = fit_seed(cfg.seed, round_index, role)
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule.begin_fit(seed)
    module = new_module(cfg, role, datamodule.num_known)
    _, datamodule.train_with_invalid = role_config(cfg, role)
    examples = len(datamodule.pool.labeled) + (len(datamodule.pool.invalid) if datamodule.train_with_invalid else 0)
    trainer = build(cfg.trainer, callbacks=[EpochLog(role, examples)], logger=False, default_root_dir=directory)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer.strategy.root_device


def model_path(project, role: str) -> str:
    return project.path("models", f"{role}.pt")


def inference_device(cfg) -> torch.device:
    wants_gpu = str(cfg.trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def current_models(project, datamodule):
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
            module, _ = fit(project.cfg, role, datamodule, round_index, project.directory)
            state = {"labels_version": version, "role": role, "state_dict": module.net.state_dict()}
            atomic_write(path, lambda f, state=state: torch.save(state, f))
        networks[role] = module.net.eval()
    return networks


def known_probability_from_detector(detector_outputs, rng: np.random.Generator) -> np.ndarray:
    """LfOSA's known probability from detector logits (0 for predicted unknowns), for strategies without GMMs."""
    return np.clip(LfOSA().scores(detector_outputs, rng), 0.0, 1.0)
