"""Whether a run directory is this run's, decided before the run writes anything there.

A run directory may come from someone else, so it is this run's only when it holds none of the paths a run
writes, or when what it holds there was written by osal (osal.records.run_files) for a run of the same config:
the resolved config its state.npz keeps and the composed one its .hydra/config.yaml keeps (a run that never
completed a round has only the latter) must both agree with this command's in what changes results. Anything
else is refused with one sentence and left exactly as it was; `take_folder` then writes the run's .hydra/
files and opens its log.
"""

import os
from typing import Optional, Union

import yaml
from omegaconf import DictConfig, OmegaConf

from osal.errors import ConfigError
from osal.loop.held_log import held_log_files, open_held_logs
from osal.loop.hydra_files import save_hydra_files
from osal.records.run_files import HYDRA_CONFIG, HYDRA_DIR, foreign_path, saved_config
from osal.records.run_state import load_state
from osal.records.settings import differences_that_matter

OWN_FOLDER = "give this run its own hydra.run.dir=..."


def composed_config(cfg: DictConfig, hydra_files: Optional[dict]) -> dict:
    """The command's config as its .hydra/config.yaml holds it (unresolved): read back from the text to be
    written, so that a saved one and this one are compared as the same reader sees them."""
    return yaml.safe_load(hydra_files[HYDRA_CONFIG] if hydra_files else OmegaConf.to_yaml(cfg))


def logger_folders(cfg: DictConfig) -> list:
    """The CSV logger's folder under the run directory when the config names a fixed one (not lightning_logs);
    without a version, Lightning makes a new version_N folder and overwrites nothing."""
    logger = cfg.get("logger")
    if not logger or "CSVLogger" not in str(logger.get("_target_", "")) or logger.get("version") is None:
        return []
    version = str(logger.get("version"))
    return [os.path.join(str(logger.get("name") or "lightning_logs"), version) if version else
            str(logger.get("name") or "lightning_logs")]


def refuse_unless_ours(output_dir: Union[str, os.PathLike], cfg: DictConfig, resolved: dict, composed: dict) -> None:
    """Raise ConfigError (or DamagedFileError, for a record that does not read back) unless `output_dir` is
    empty of what a run writes or holds osal's files of a run of this config; `fresh=true` accepts a run of
    another config, to be replaced, but never someone else's files."""
    output_dir = str(output_dir)
    # train.log as train.py's logging names it, looked at in a run made in Python too (which writes none)
    logs = {"train.log", *held_log_files(output_dir)}
    foreign = foreign_path(output_dir, sorted(logs), logger_folders(cfg))
    if foreign:
        raise ConfigError(f"{output_dir} holds {foreign}, which is not a record of an osal run; a run writes there "
                          f"(and fresh=true deletes its records), so {OWN_FOLDER}, or move it away")
    state, composed_before = load_state(output_dir), saved_config(output_dir)
    wandb = os.path.join(output_dir, "wandb")
    if state is None and composed_before is None and os.path.isdir(wandb):
        raise ConfigError(f"{output_dir} holds {wandb} but no run that osal saved there, so those W&B files are "
                          f"someone else's; {OWN_FOLDER}, or move it away")
    if OmegaConf.select(cfg, "fresh"):
        return
    for where, saved, current in ((os.path.join(HYDRA_DIR, HYDRA_CONFIG), composed_before, composed),
                                  ("state.npz", state.config if state else None, resolved)):
        diffs = differences_that_matter(saved, current) if saved is not None else []
        if diffs:
            shown = ", ".join(diffs[:5]) + (", ..." if len(diffs) > 5 else "")
            raise ConfigError(f"{output_dir} holds a run with a different config (differs in {shown}), says its "
                              f"{where}; {OWN_FOLDER}, or set fresh=true to replace that run")


def take_folder(output_dir: Union[str, os.PathLike], hydra_files: Optional[dict]) -> None:
    """The directory is this run's: write its .hydra/ files (when train.py gave them) and open its log."""
    if hydra_files:
        save_hydra_files(output_dir, hydra_files)
    open_held_logs()


def show_failed_start(output_dir: Union[str, os.PathLike], hydra_files: Optional[dict]) -> None:
    """A command refused before its run directory was looked at (a config error): when the directory is empty,
    as Hydra made it for this job, it gets its .hydra/ files and log all the same, so that a sweep's failed job
    shows (the tally finds job folders by .hydra/config.yaml, SLURM's job id is in hydra.yaml). The first
    process of a run alone writes them; a folder that cannot be written is left so."""
    if not hydra_files or any(os.environ.get(rank, "0") != "0" for rank in ("RANK", "SLURM_PROCID")):
        return
    try:
        if not os.listdir(output_dir):
            take_folder(output_dir, hydra_files)
    except OSError:
        pass
