"""Which GPU a job of a local parallel sweep uses."""

import torch


def spread_over_gpus(cfg, hydra_cfg) -> None:
    """In a joblib multirun, put job n on visible GPU n mod (number of GPUs).

    Joblib keeps its worker processes (and their CUDA contexts) between jobs, so the GPU
    is chosen through the Trainer's `devices` rather than CUDA_VISIBLE_DEVICES.
    """
    launcher = str(hydra_cfg.launcher.get("_target_", ""))
    if "joblib" not in launcher.lower() or not torch.cuda.is_available():
        return
    if cfg.trainer.get("accelerator") not in ("gpu", "cuda", "auto"):
        return
    count = torch.cuda.device_count()
    if count > 1:
        cfg.trainer.devices = [int(hydra_cfg.job.num) % count]
