"""Every path a run writes in its directory, and whether what is found there was written by osal.

A run directory may come from someone else (committed, cloned, copied, a folder reused by hand), so what it
holds is untrusted input. Before a run writes anything there, each path it would write is read: one that osal
did not write is reported here and refused by the loop rather than overwritten or deleted; one that osal wrote
but that does not read back as it was written (a Git LFS pointer, merge-conflict markers, a truncated file)
raises osal.stored.DamagedFileError, naming it and what to do.

    .hydra/config.yaml, hydra.yaml, overrides.yaml   the command's config (osal.loop.hydra_files)
    train.log                                        the job's log (osal.loop.held_log)
    metrics.csv, pool_round_XX.npz, state.npz        every round's records
    summary.json                                     the mark of a finished run
    lightning_logs/metrics.csv, hparams.yaml         logger=csv (another logger.name: that folder)
    wandb/                                           logger=wandb: W&B's own files, which no content tells apart
    .osal.lock                                       osal.folders.exclusive_use

`fresh=true` deletes the records (metrics.csv, pool_round_XX.npz, state.npz, summary.json) and nothing else.
"""

import json
import os
import re
from typing import Iterable, Optional, Union

import yaml

from osal.folders import LOCK_FILE
from osal.records.metrics import read_metrics
from osal.records.run_state import STATE_FILE, read_state
from osal.records.summary import SUMMARY_FILE
from osal.stored import read_npz, read_text, read_yaml_text

HYDRA_DIR = ".hydra"
HYDRA_CONFIG = "config.yaml"  # in HYDRA_DIR: the command's composed config
POOL_FIX = "restore it from where the run directory came, or move it away"
# the top-level keys of every config conf/train.yaml composes: what tells an osal run's config from another's
TRAIN_KEYS = {"al", "split", "data", "strategy", "dataset", "mismatch", "seed"}
# the first line of a log osal's job logging wrote (conf/hydra/job_logging/osal.yaml: "detailed")
LOG_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[[^\]]+\]\[[A-Z]+\] - ")


def record_kind(name: str) -> Optional[str]:
    """Which of a run's records a file name is, or None for any other file."""
    if name in ("metrics.csv", SUMMARY_FILE, STATE_FILE):
        return name
    return "pool_round" if re.fullmatch(r"pool_round_\d+\.npz", name) else None


def is_run_record(path: str) -> bool:
    """Whether a path named like a run record holds what osal writes there; DamagedFileError when it is osal's
    but does not read back as written (a .npz is always taken for osal's: its name and format say so)."""
    kind = record_kind(os.path.basename(path))
    if kind == STATE_FILE:
        read_state(path)  # a folder or anything else that is not the state osal wrote: DamagedFileError
        return True
    if not os.path.isfile(path):
        return False
    if kind == "metrics.csv":
        if not read_text(path).startswith("round,n_labeled,"):
            return False
        read_metrics(path)  # every cell a number
        return True
    if kind == SUMMARY_FILE:
        return "output_dir" in _json_object(read_text(path))
    read_npz(path, ["state", "query_round"], POOL_FIX)
    return True


def foreign_path(output_dir: Union[str, os.PathLike], logs: Iterable[str] = (),
                 logger_folders: Iterable[str] = ()) -> Optional[str]:
    """The first path of `output_dir` that a run writes and that holds what osal did not write, or None.

    `logs` are the log files' names and `logger_folders` the Lightning logger's folders that this run would
    write (lightning_logs is always looked at). DamagedFileError for a path osal wrote that does not read back.
    """
    output_dir = str(output_dir)
    if not os.path.isdir(output_dir):
        return None
    checks = {HYDRA_DIR: None, os.path.join(HYDRA_DIR, HYDRA_CONFIG): _train_config,
              os.path.join(HYDRA_DIR, "hydra.yaml"): _hydra_config,
              os.path.join(HYDRA_DIR, "overrides.yaml"): _overrides, LOCK_FILE: _lock, "wandb": None}
    checks.update({name: _log for name in logs})
    for folder in ("lightning_logs", *logger_folders):
        checks.update({folder: None, os.path.join(folder, "metrics.csv"): _logged_rows,
                       os.path.join(folder, "hparams.yaml"): _train_config})
    for relative, is_osals in checks.items():
        path = os.path.join(output_dir, relative)
        if not os.path.lexists(path):
            continue
        if is_osals is None:  # a folder a run writes into
            if not os.path.isdir(path):
                return path
        elif not os.path.isfile(path):
            return path
        elif os.path.getsize(path) and not is_osals(path):
            return path  # (an empty file has nothing to lose: a log a full disk cut short, say)
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        if record_kind(name) is not None and not is_run_record(path):
            return path
    return None


def saved_config(output_dir: Union[str, os.PathLike]) -> Optional[dict]:
    """The run's config as .hydra/config.yaml keeps it (unresolved), or None when there is none; call after
    foreign_path found nothing, so that the file is osal's."""
    path = os.path.join(str(output_dir), HYDRA_DIR, HYDRA_CONFIG)
    return _yaml(read_yaml_text(path)) if os.path.isfile(path) else None


# -- whether a file is osal's: each takes the path of an existing file --------------------------------------

def _yaml(text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _train_config(path: str) -> bool:
    """A config composed from conf/train.yaml (.hydra/config.yaml, or the hyperparameters a logger saved)."""
    config = _yaml(read_yaml_text(path))
    return isinstance(config, dict) and TRAIN_KEYS <= set(config)


def _hydra_config(path: str) -> bool:
    config = _yaml(read_yaml_text(path))
    return isinstance(config, dict) and isinstance(config.get("hydra"), dict) and "job" in config["hydra"]


def _overrides(path: str) -> bool:
    overrides = _yaml(read_yaml_text(path))
    return overrides is None or (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides))


def _log(path: str) -> bool:
    """Its first line is one osal's job logging writes (a log is only appended to)."""
    with open(path, "rb") as f:
        first = f.readline(4096).decode("utf-8", errors="replace")
    return bool(LOG_LINE.match(first))


def _logged_rows(path: str) -> bool:
    """Lightning's CSV log of osal's rows (step = round); its cells are Lightning's to write."""
    header = read_text(path).split("\n", 1)[0].split(",")
    return "step" in header and "n_labeled" in header


def _lock(path: str) -> bool:
    return "pid" in _json_object(read_text(path))
