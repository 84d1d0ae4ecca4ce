"""A Hydra callback that refuses an unwritable run or sweep directory before Hydra writes into it.

Hydra creates the run directory and saves the config there before `train.py`'s own code runs, so a
read-only or missing-permission folder would otherwise end in Hydra's traceback.
"""

import os
import sys
from typing import Any, Union

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from osal.folders import FolderError, check_writable


class OutputFolderCheck(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(config.hydra.sweep.dir, "hydra.sweep.dir")


def refuse_unwritable(folder: Union[str, os.PathLike], knob: str) -> None:
    try:
        check_writable(folder, "the output folder", f"give {knob}=... a folder you can write to")
    except FolderError as error:
        # Hydra turns a callback's exceptions into warnings: leave with the sentence and status 2 instead
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
