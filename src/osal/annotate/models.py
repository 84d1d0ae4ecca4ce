"""The two networks of an annotation project: fit on the current labels, kept in models/, reloaded.

A K+1-way detector (labeled + `unknown` answers as class K) says which images look unknown;
a K-way classifier suggests a class. Each fit is seeded from (seed, batch number, role),
as the research loop seeds its rounds, so the same labels always give the same weights.
"""

import logging
import os
import pickle
import warnings
from typing import Optional

import lightning as L
import torch
from omegaconf import DictConfig

from osal.annotate.project import AnnotationError, Project
from osal.atomic import atomic_write
from osal.data.datamodule import PoolDataModule
from osal.engine.fit import build_module, fit_role
from osal.engine.roles import role_config
from osal.errors import brief, machine_reason
from osal.stored import LFS_POINTER, DamagedFileError

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


def saved_model(project: Project, role: str) -> Optional[dict]:
    """What models/<role>.pt holds ({labels_version, role, state_dict}), or None when there is none yet. A file
    osal did not save this way (a Git LFS pointer, a truncated copy, anything else) is refused in one sentence."""
    path = model_path(project, role)
    if not os.path.exists(path):
        return None
    fix = (f"delete it (the {role} is then trained again on the current labels), or restore it from a good copy "
           "of the project")
    with open(path, "rb") as f:
        if f.read(len(LFS_POINTER)) == LFS_POINTER:
            raise DamagedFileError(f"{path} is a Git LFS pointer, not the file itself; fetch it with `git lfs pull`, "
                                   f"or {fix}")
    try:
        with warnings.catch_warnings():  # torch warns about a pickle it did not write; the check below answers it
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: never code from a file
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError):
        saved = None
    except OSError as error:  # torch reads a truncated archive as an invalid argument
        if machine_reason(error) is not None:
            raise
        saved = None
    if (not isinstance(saved, dict) or type(saved.get("labels_version")) is not int
            or not isinstance(saved.get("state_dict"), dict)):
        raise DamagedFileError(f"{path} is damaged or not a network osal saved; {fix}")
    return saved


def loaded(module: L.LightningModule, state_dict: dict, role: str) -> bool:
    """Whether the saved weights fit the network config.yaml's model builds (they do not after the model was
    changed there): if not, the network is trained again rather than refused."""
    try:
        module.net.load_state_dict(state_dict)
        return True
    except (RuntimeError, ValueError, TypeError) as error:
        log.info("the saved %s does not fit config.yaml's model (%s); training it again", role,
                 brief(error, 100))
        return False


def current_models(project: Project, datamodule: PoolDataModule) -> dict[str, torch.nn.Module]:
    """{role: network} trained on the project's current labels: loaded from models/ or fit now and saved."""
    version = project.labels_version
    round_index = len(project.batches) + 1  # the seeds `next` uses for the batch after the current labels
    saved = {role: saved_model(project, role) for role in ROLES}  # both checked before any training
    os.makedirs(project.path("models"), exist_ok=True)
    networks = {}
    for role in ROLES:
        path = model_path(project, role)
        module = new_module(project.cfg, role, project.num_known)
        if not (saved[role] is not None and saved[role]["labels_version"] == version
                and loaded(module, saved[role]["state_dict"], role)):
            log.info("training the %s on %d labeled + %d unknown answers", role, len(project.pool.labeled),
                     len(project.pool.invalid))
            datamodule.setup("fit")
            module = fit(project.cfg, role, datamodule, round_index, project.directory)
            state = {"labels_version": version, "role": role, "state_dict": module.net.state_dict()}
            atomic_write(path, lambda f, state=state: torch.save(state, f))
        networks[role] = module.net.eval()
    return networks
