"""Find every run under a directory and read its config, its metrics and whether it finished."""

import json
import os

from omegaconf import OmegaConf

from osal.loop.records import read_metrics


def read_run(directory):
    """One run directory (metrics.csv + .hydra/config.yaml) as a dict, or None when it has no rows yet.

    `finished` is true when the run reached its last round (`al.rounds`), or ended early because its pool
    ran out (summary.json says so); `reached` is the last round it recorded.
    """
    config_path = os.path.join(directory, ".hydra", "config.yaml")
    metrics_path = os.path.join(directory, "metrics.csv")
    if not (os.path.exists(config_path) and os.path.exists(metrics_path)):
        return None
    cfg = OmegaConf.load(config_path)
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    rounds, reached = int(cfg.al.rounds), int(rows[-1]["round"])
    summary_path = os.path.join(directory, "summary.json")
    ended_early = False
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        ended_early = bool(summary.get("note")) and int(summary.get("rows", -1)) == len(rows)
    return {"dir": directory, "dataset": cfg.dataset.name, "mismatch": float(cfg.mismatch),
            "strategy": cfg.strategy.name, "seed": int(cfg.seed), "rows": rows, "rounds": rounds,
            "reached": reached, "finished": reached >= rounds or ended_early}


def find_runs(root) -> list:
    """Every run directory below `root` that holds metrics.csv and .hydra/config.yaml, finished or not."""
    runs = []
    for directory, _, files in sorted(os.walk(root)):
        if "metrics.csv" in files:
            run = read_run(directory)
            if run is not None:
                runs.append(run)
    return runs
