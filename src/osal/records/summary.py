"""summary.json: written when a run reaches its end, so its presence marks a finished run.

The loop removes it while a larger al.rounds continues a run; the report's table and the sweep
tally count a run as finished by this one test.
"""

import json
import os
from typing import Optional, Union

from osal.atomic import atomic_write_text
from osal.stored import DamagedFileError, read_text

SUMMARY_FILE = "summary.json"


def summary_path(directory: Union[str, os.PathLike]) -> str:
    return os.path.join(str(directory), SUMMARY_FILE)


def is_finished(directory: Union[str, os.PathLike]) -> bool:
    """A run directory whose run reached its end (cheap enough for a sweep's tally after every job)."""
    return os.path.exists(summary_path(directory))


def write_summary(directory: Union[str, os.PathLike], summary: dict) -> None:
    write_json(summary_path(directory), summary)


def read_summary(directory: Union[str, os.PathLike]) -> Optional[dict]:
    """The summary of a finished run, or None; DamagedFileError when summary.json is not the JSON object osal
    writes (or does not read back: osal.stored.read_text)."""
    if not is_finished(directory):
        return None
    path = summary_path(directory)
    try:
        summary = json.loads(read_text(path))
    except ValueError:
        summary = None
    if not isinstance(summary, dict) or "output_dir" not in summary:
        raise DamagedFileError(f"{path} is not the summary osal writes (a JSON object with the run's results); "
                               "restore it from where the run directory came, or move it away")
    return summary


def remove_summary(directory: Union[str, os.PathLike]) -> None:
    """The run goes on (a larger al.rounds): it is unfinished again until its new end."""
    if is_finished(directory):
        os.remove(summary_path(directory))


def write_json(path: Union[str, os.PathLike], payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
