"""Find every run under a directory and read its config and metrics."""

import os

from omegaconf import OmegaConf

from osal.loop.records import read_metrics


def find_runs(root) -> list:
    """One dict per run directory below `root` that holds metrics.csv and .hydra/config.yaml."""
    runs = []
    for directory, _, files in sorted(os.walk(root)):
        config_path = os.path.join(directory, ".hydra", "config.yaml")
        if "metrics.csv" not in files or not os.path.exists(config_path):
            continue
        cfg = OmegaConf.load(config_path)
        rows = read_metrics(os.path.join(directory, "metrics.csv"))
        if not rows:
            continue
        runs.append({"dir": directory, "dataset": cfg.dataset.name, "mismatch": float(cfg.mismatch),
                     "strategy": cfg.strategy.name, "seed": int(cfg.seed), "rows": rows})
    return runs
