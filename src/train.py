"""Entry point: `python src/train.py [overrides]` runs one active-learning job (see README)."""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from osal.errors import OsalError  # noqa: E402
from osal.loop.experiment import Experiment  # noqa: E402
from osal.quiet import quiet_lightning  # noqa: E402

log = logging.getLogger("osal")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    quiet_lightning()
    try:
        summary = Experiment(cfg, HydraConfig.get().runtime.output_dir).run()
    except OsalError as error:
        # a mistake the user can fix: one sentence, no traceback, non-zero exit
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    log.info("results in %s", summary["output_dir"])
    return summary["final"]["recall"] or 0.0  # what a sweeper would optimise


if __name__ == "__main__":
    main()
