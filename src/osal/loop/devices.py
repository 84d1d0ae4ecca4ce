"""Which GPU a job of a local parallel sweep uses."""

import fcntl
import os
from typing import Optional, TextIO

import torch
from omegaconf import DictConfig

from osal.knobs import ddp_processes_wanted


def spread_over_gpus(cfg: DictConfig, hydra_cfg: DictConfig) -> Optional[TextIO]:
    """In a joblib multirun, give the job a visible GPU that no other running job of the sweep holds.

    A GPU is held through an exclusive flock on <sweep dir>/.gpus/<index>.lock, which the kernel
    drops when the job closes the file (train.py, as the job ends) or its process dies. Job n tries
    GPU n mod (number of GPUs) first, then the next ones; when all are held (n_jobs > GPUs) it waits
    for its first choice. Returns the open lock file, or None when no GPU was chosen. Joblib keeps
    its worker processes (and their CUDA contexts) between jobs, so the GPU is chosen through the
    Trainer's `devices` rather than CUDA_VISIBLE_DEVICES.
    """
    launcher = str(hydra_cfg.launcher.get("_target_", ""))
    if "joblib" not in launcher.lower() or not torch.cuda.is_available():
        return None
    if cfg.trainer.get("accelerator") not in ("gpu", "cuda", "auto"):
        return None
    if ddp_processes_wanted(cfg.trainer) > 1:  # a DDP job keeps the devices it asked for
        return None
    count = torch.cuda.device_count()
    if count < 2:
        return None
    folder = os.path.join(str(hydra_cfg.sweep.dir), ".gpus")
    os.makedirs(folder, exist_ok=True)
    first = int(hydra_cfg.job.num) % count
    tries = [((first + i) % count, fcntl.LOCK_NB) for i in range(count)] + [(first, 0)]
    for gpu, flags in tries:
        lock = open(os.path.join(folder, f"{gpu}.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | flags)
        except BlockingIOError:
            lock.close()
            continue
        cfg.trainer.devices = [gpu]
        return lock
