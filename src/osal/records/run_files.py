"""The records a run directory holds, told apart from files of anyone else's.

A run writes (and `fresh=true` deletes) metrics.csv, summary.json, state.npz and pool_round_XX.npz
in its directory. A file of the same name that osal did not write (a directory reused by hand) is
refused rather than overwritten or deleted.
"""

import json
import os
import re
import zipfile
from typing import Optional, Union

import numpy as np

from osal.records.run_state import STATE_FILE
from osal.records.summary import SUMMARY_FILE


def record_kind(name: str) -> Optional[str]:
    """Which of a run's records a file name is, or None for any other file."""
    if name in ("metrics.csv", SUMMARY_FILE, STATE_FILE):
        return name
    return "pool_round" if re.fullmatch(r"pool_round_\d+\.npz", name) else None


def is_run_record(path: str) -> bool:
    """Whether a file named like a run record holds what osal writes there."""
    kind = record_kind(os.path.basename(path))
    try:
        if kind == "metrics.csv":
            with open(path) as f:
                return f.readline().startswith("round,n_labeled,")
        if kind == SUMMARY_FILE:
            with open(path) as f:
                return "output_dir" in json.load(f)
        with np.load(path) as data:
            return ({"meta", "state"} if kind == STATE_FILE else {"state", "query_round"}) <= set(data.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def foreign_records(output_dir: Union[str, os.PathLike]) -> Optional[str]:
    """The first file of `output_dir` named like a run record that osal did not write, or None."""
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        if record_kind(name) is not None and os.path.isfile(path) and not is_run_record(path):
            return path
    return None
