"""The run directory's .hydra/ files (config.yaml, hydra.yaml, overrides.yaml), written by osal itself.

Hydra would save them before `train.py`'s own code runs, so a command refused because the directory holds
another run (or someone else's files) would already have overwritten that run's config: the report would
then show its numbers under this command's settings. conf/hydra/default.yaml turns Hydra's saving off
(`output_subdir: null`); train.py takes the texts as Hydra would have written them, before it adjusts the
config (a job's GPU), and the loop writes them once the directory is known to be this run's.
"""

import os
from typing import Union

from omegaconf import DictConfig, OmegaConf

from osal.atomic import atomic_write_text
from osal.records.run_files import HYDRA_CONFIG, HYDRA_DIR


def hydra_files(cfg: DictConfig, hydra_cfg: DictConfig) -> dict:
    """{file name: text} of the job's .hydra/ files, as Hydra 1.3 writes them: the task config and Hydra's own,
    unresolved, and the command line's overrides."""
    return {HYDRA_CONFIG: OmegaConf.to_yaml(cfg),
            "hydra.yaml": OmegaConf.to_yaml({"hydra": hydra_cfg}),
            "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task)}


def save_hydra_files(output_dir: Union[str, os.PathLike], files: dict) -> None:
    folder = os.path.join(str(output_dir), HYDRA_DIR)
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(os.path.join(folder, name), text)
