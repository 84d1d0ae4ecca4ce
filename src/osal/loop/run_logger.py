"""The run's Lightning logger (CSV, W&B, ...): one row per round, step = round.

metrics.csv, written by osal itself, stays the source of truth; the logger is a view of
it for dashboards. Each run (each job of a multirun) opens and closes its own logger.

W&B (`logger=wandb`, docs/wandb.md): every row is also logged with a `round` metric, and
`round` is declared the x-axis of every chart (`define_metric("*", step_metric="round")`);
W&B's own step equals the round too, since the loop logs exactly one row per round from 0.
"""

import logging

from osal.build import build
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def is_wandb(logger) -> bool:
    from lightning.pytorch.loggers import WandbLogger
    return isinstance(logger, WandbLogger)


def open_logger(cfg, output_dir):
    """The configured logger with the resolved config as hyperparameters, or None for `logger=none`."""
    if not cfg.get("logger"):
        return None
    logger = build(cfg.logger, save_dir=output_dir)
    if is_wandb(logger):
        finish_stale_wandb_run()
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))  # starts the W&B run
    if is_wandb(logger):
        logger.experiment.define_metric("round")
        logger.experiment.define_metric("*", step_metric="round")
    return logger


def finish_stale_wandb_run() -> None:
    """A W&B run still open here was left by an earlier job of this process that failed before closing it;
    WandbLogger would log into it, so it is finished (as failed) and this job gets a run of its own."""
    import wandb
    if wandb.run is not None:
        log.warning("finishing the W&B run %s left open by an earlier job", wandb.run.id)
        wandb.run.finish(exit_code=1)


def log_row(logger, row: dict) -> None:
    if logger is None:
        return
    values = {k: v for k, v in row.items() if v is not None and k != "round"}
    if is_wandb(logger):
        values["round"] = int(row["round"])  # the x-axis of the W&B charts
    logger.log_metrics(values, step=int(row["round"]))


def close_logger(logger, status: str = "success") -> None:
    if logger is None:
        return
    logger.finalize(status)
    experiment = getattr(logger, "_experiment", None)
    # a W&B run stays open until finished: a multirun's next job must start a new one
    if experiment is not None and hasattr(experiment, "finish"):
        experiment.finish(exit_code=0 if status == "success" else 1)
