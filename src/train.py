"""Entry point: `python src/train.py [overrides]` runs one active-learning job (see README)."""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from osal.errors import OsalError  # noqa: E402
from osal.loop.devices import spread_over_gpus  # noqa: E402
from osal.loop.experiment import Experiment  # noqa: E402
from osal.quiet import quiet_lightning  # noqa: E402

log = logging.getLogger("osal")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    quiet_lightning()
    if cfg.trainer.get("deterministic"):
        # cuBLAS needs this before its first use for deterministic matrix products
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    hydra_cfg = HydraConfig.get()
    with open_dict(cfg):
        gpu_lock = spread_over_gpus(cfg, hydra_cfg)  # held while this job runs
    try:
        summary = Experiment(cfg, hydra_cfg.runtime.output_dir).run()
    except OsalError as error:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.error("error: %s", error)
            raise  # Hydra marks this job failed and the sweep goes on with the others
        # a mistake the user can fix: one sentence, no traceback, non-zero exit
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        if gpu_lock is not None:
            gpu_lock.close()
    log.info("results in %s", summary["output_dir"])
    return summary["final"]["recall"] or 0.0  # what a sweeper would optimise


if __name__ == "__main__":
    main()
