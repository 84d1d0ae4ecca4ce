"""How many jobs of a sweep finished, and which did not."""

import os
from typing import Union

from osal.records.summary import is_finished


def sweep_status(root: Union[str, os.PathLike]) -> dict:
    """Job directories under `root` (those with .hydra/config.yaml), split by whether the run reached its end
    (the same test the report's table uses)."""
    finished, unfinished = [], []
    for directory, subdirs, files in sorted(os.walk(root)):
        if os.path.exists(os.path.join(directory, ".hydra", "config.yaml")) and directory != str(root).rstrip("/"):
            (finished if is_finished(directory) else unfinished).append(directory)
            subdirs[:] = []  # a job directory holds no further jobs
    return {"finished": finished, "unfinished": unfinished}


def describe(status: dict) -> str:
    n_done, n_bad = len(status["finished"]), len(status["unfinished"])
    text = f"{n_done + n_bad} jobs: {n_done} finished, {n_bad} failed or unfinished"
    if n_bad:
        text += " (" + ", ".join(os.path.basename(d) for d in status["unfinished"][:10]) + \
                (", ..." if n_bad > 10 else "") + ")"
    return text
