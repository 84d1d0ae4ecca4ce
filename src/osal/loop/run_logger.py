"""The run's Lightning logger (CSV, W&B, ...): one row per round, step = round.

metrics.csv, written by osal itself, stays the source of truth; the logger is a view of
it for dashboards. Each run (each job of a multirun) opens and closes its own logger.
"""

from hydra.utils import instantiate
from omegaconf import OmegaConf


def open_logger(cfg, output_dir):
    """The configured logger with the resolved config as hyperparameters, or None for `logger=none`."""
    if not cfg.get("logger"):
        return None
    logger = instantiate(cfg.logger, save_dir=output_dir)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def log_row(logger, row: dict) -> None:
    if logger is None:
        return
    values = {k: v for k, v in row.items() if v is not None and k != "round"}
    logger.log_metrics(values, step=int(row["round"]))


def close_logger(logger, status: str = "success") -> None:
    if logger is None:
        return
    logger.finalize(status)
    experiment = getattr(logger, "_experiment", None)
    # a W&B run stays open until finished: a multirun's next job must start a new one
    if experiment is not None and hasattr(experiment, "finish"):
        experiment.finish(exit_code=0 if status == "success" else 1)
