"""The run's Lightning logger (CSV, W&B, ...): one row per round, step = round.

metrics.csv, written by osal itself, stays the source of truth; the logger is a view of
it for dashboards. Each run (each job of a multirun) opens and closes its own logger.

W&B (`logger=wandb`, docs/wandb.md): every row is also logged with a `round` metric, and
`round` is declared the x-axis of every chart (`define_metric("*", step_metric="round")`);
W&B's own step equals the round too, since the loop logs exactly one row per round from 0.
"""

import configparser
import logging
import netrc
import os
import socket
from typing import TYPE_CHECKING, Optional, Union
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from osal.build import build
from osal.errors import ConfigError, brief

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

log = logging.getLogger(__name__)

WANDB_HOST = "https://api.wandb.ai"
REACH_SECONDS = 10  # how long to wait for the W&B server before saying it cannot be reached
OFFLINE_HINT = ("or set WANDB_MODE=offline to log on this machine only and upload later with `wandb sync "
                "<run dir>/wandb/offline-run-*`")


def wants_wandb(cfg: DictConfig) -> bool:
    return bool(cfg.get("logger")) and "WandbLogger" in str(cfg.logger.get("_target_", ""))


def check_logger_can_start(cfg: DictConfig) -> None:
    """logger=wandb: refuse, before any data is read, a run whose logger could not start (no wandb package,
    no API key, no way to the W&B server); offline runs need neither key nor network."""
    if not wants_wandb(cfg):
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("logger=wandb needs the wandb package, which is not installed; pip install "
                          "'osal[wandb]' (or wandb), or use logger=csv") from None
    if cfg.logger.get("offline") or wandb_mode() in ("offline", "dryrun", "disabled"):
        return
    host = os.environ.get("WANDB_BASE_URL") or WANDB_HOST
    if not has_api_key(host):
        raise ConfigError(f"logger=wandb needs a W&B API key for {host} and none is set; run `wandb login` or set "
                          f"WANDB_API_KEY, {OFFLINE_HINT}")
    problem = unreachable(host)
    if problem:
        raise ConfigError(f"logger=wandb cannot reach the W&B server {host} ({problem}); check the network, "
                          f"{OFFLINE_HINT}")


def wandb_mode() -> str:
    """WANDB_MODE, else the mode `wandb offline` / `wandb online` saved in a W&B settings file."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"].lower()
    config_dir = os.environ.get("WANDB_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".config", "wandb")
    mode = ""
    for path in (os.path.join(config_dir, "settings"), os.path.join("wandb", "settings")):  # the local file wins
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        mode = parser.get("default", "mode", fallback=mode)
    return mode.lower()


def has_api_key(host: str) -> bool:
    """An API key in the environment, or one `wandb login` saved in the netrc file for `host`."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(urlparse(host).hostname or "")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def unreachable(host: str) -> Optional[str]:
    """Why no connection to `host` (or the HTTPS proxy in use) opens within REACH_SECONDS, or None when one does."""
    url = urlparse(host)
    name = "https_proxy" if url.scheme == "https" else "http_proxy"
    proxy = os.environ.get(name.upper()) or os.environ.get(name)
    target = urlparse(proxy) if proxy else url
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((target.hostname, port), timeout=REACH_SECONDS).close()
    except OSError as error:
        return f"no connection to {target.hostname}:{port}: {brief(error)}"
    return None


def is_wandb(logger: Optional["Logger"]) -> bool:
    from lightning.pytorch.loggers import WandbLogger
    return isinstance(logger, WandbLogger)


def open_logger(cfg: DictConfig, output_dir: Union[str, os.PathLike]) -> Optional["Logger"]:
    """The configured logger with the resolved config as hyperparameters, or None for `logger=none`."""
    if not cfg.get("logger"):
        return None
    logger = build(cfg.logger, save_dir=output_dir)
    if is_wandb(logger):
        finish_stale_wandb_run()
    try:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))  # starts the W&B run
    except Exception as error:
        if not is_wandb(logger) or not type(error).__module__.startswith("wandb"):
            raise
        raise ConfigError(f"W&B could not start the run ({brief(error)}); run `wandb login` again, "
                          f"{OFFLINE_HINT}") from None
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


def log_row(logger: Optional["Logger"], row: dict) -> None:
    if logger is None:
        return
    values = {k: v for k, v in row.items() if v is not None and k != "round"}
    if is_wandb(logger):
        values["round"] = int(row["round"])  # the x-axis of the W&B charts
    logger.log_metrics(values, step=int(row["round"]))


def close_logger(logger: Optional["Logger"], status: str = "success") -> None:
    if logger is None:
        return
    logger.finalize(status)
    experiment = getattr(logger, "_experiment", None)
    # a W&B run stays open until finished: a multirun's next job must start a new one
    if experiment is not None and hasattr(experiment, "finish"):
        experiment.finish(exit_code=0 if status == "success" else 1)
