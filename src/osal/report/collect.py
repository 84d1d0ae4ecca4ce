"""Find every run under a directory and read its config, its metrics and whether it finished."""

import os
from typing import Optional, Union

from omegaconf import OmegaConf

from osal.records.metrics import read_metrics
from osal.records.settings import NAMED_IN_DIRECTORY, RESULT_NEUTRAL
from osal.records.summary import is_finished


def read_run(directory: Union[str, os.PathLike]) -> Optional[dict]:
    """One run directory (metrics.csv + .hydra/config.yaml) as a dict, or None when it has no rows yet.

    `finished` is true when the run wrote summary.json, which it does at its end (its last round, or an
    early end when the pool ran out) and removes when a larger al.rounds continues it; `reached` is the
    last round it recorded.
    """
    config_path = os.path.join(directory, ".hydra", "config.yaml")
    metrics_path = os.path.join(directory, "metrics.csv")
    if not (os.path.exists(config_path) and os.path.exists(metrics_path)):
        return None
    cfg = OmegaConf.load(config_path)
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    return {"dir": directory, "dataset": cfg.dataset.name, "mismatch": float(cfg.mismatch),
            "strategy": cfg.strategy.name, "seed": int(cfg.seed), "rows": rows, "rounds": int(cfg.al.rounds),
            "reached": int(rows[-1]["round"]), "finished": is_finished(directory)}


def find_runs(root: Union[str, os.PathLike]) -> list:
    """Every run directory below `root` that holds metrics.csv and .hydra/config.yaml, finished or not.

    Each run's `variant` names the command-line settings that tell it apart from the other runs found
    besides dataset, mismatch, strategy and seed (e.g. "openness=0.3" in the openness grid), so that runs
    of different settings are never averaged together.
    """
    runs = []
    for directory, _, files in sorted(os.walk(root)):
        if "metrics.csv" in files:
            run = read_run(directory)
            if run is not None:
                runs.append(run)
    overrides = [command_line(run["dir"]) for run in runs]
    varying = sorted({key for o in overrides for key in o if key not in SET_APART
                      and len({str(other.get(key)) for other in overrides}) > 1})
    for run, given in zip(runs, overrides):
        run["variant"] = " ".join(f"{key}={given[key]}" for key in varying if key in given)
    return runs


# told apart by their own columns, or not changing what a run computes (al.rounds does change a run's end)
SET_APART = set(NAMED_IN_DIRECTORY) | (set(RESULT_NEUTRAL) - {"al.rounds"})


def command_line(directory: Union[str, os.PathLike]) -> dict:
    """{key: value} of the overrides the run was started with (.hydra/overrides.yaml), hydra.* left out."""
    path = os.path.join(directory, ".hydra", "overrides.yaml")
    if not os.path.exists(path):
        return {}
    pairs = [str(item).split("=", 1) for item in OmegaConf.load(path)]
    return {key.lstrip("+~"): value for key, value in (p for p in pairs if len(p) == 2)
            if not key.lstrip("+~").startswith("hydra")}
