"""Entry point: `python src/train.py [overrides]` runs one active-learning job (see README)."""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

from osal.interrupt import leave_quietly_on_ctrl_c  # noqa: E402

leave_quietly_on_ctrl_c("interrupted; every completed round of every run is kept: run the same command again to "
                        "continue")  # while torch loads and Hydra composes, and between the jobs of a multirun

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from osal.errors import OsalError, machine_problem  # noqa: E402
from osal.interrupt import EXIT_STATUS, Interrupted, ctrl_c_interrupts  # noqa: E402
from osal.loop.devices import spread_over_gpus  # noqa: E402
from osal.loop.experiment import Experiment, where_it_stands  # noqa: E402
from osal.loop.hydra_files import hydra_files  # noqa: E402
from osal.loop.job_failed import JobFailed  # noqa: E402
from osal.loop.processes import ddp_processes  # noqa: E402
from osal.loop.run_folder import show_failed_start  # noqa: E402
from osal.quiet import quiet_lightning  # noqa: E402
from osal.targets import check_overrides, command_line_overrides  # noqa: E402

log = logging.getLogger("osal")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    quiet_lightning()
    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks of its own
    if cfg.trainer.get("deterministic"):
        # cuBLAS needs this before its first use for deterministic matrix products
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    files = hydra_files(cfg, hydra_cfg)  # .hydra/, as composed: written once the directory is this run's
    with open_dict(cfg):
        gpu_lock = spread_over_gpus(cfg, hydra_cfg)  # held while this job runs
    try:
        with ctrl_c_interrupts():
            experiment = Experiment(cfg, output_dir, files)  # the config is checked before any process starts
            with ddp_processes(cfg, hydra_cfg, script=__file__):  # one process unless trainer.devices > 1
                summary = experiment.run()
    except Interrupted:
        again = (f"run the same multirun again with hydra.sweep.dir={hydra_cfg.sweep.dir} to continue it"
                 if multirun else "run the same command again to continue")
        print(f"interrupted: {where_it_stands(output_dir)}; {again}", file=sys.stderr)
        sys.exit(EXIT_STATUS)
    except (OsalError, OSError) as error:
        problem = str(error) if isinstance(error, OsalError) else \
            machine_problem(error, where=f"writing under {output_dir}")
        if problem is None:
            raise  # an OSError the machine did not cause is a bug: keep its traceback
        show_failed_start(output_dir, files)
        if isinstance(error, OSError):
            problem += f"; {where_it_stands(output_dir)}: fix that and run the same command again to continue"
        if multirun:
            # Hydra marks this job failed and the sweep goes on; the sweep ends with this line, no traceback
            raise JobFailed(problem) from None
        # a mistake the user can fix: one sentence, no traceback, non-zero exit
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    finally:
        if gpu_lock is not None:
            gpu_lock.close()
    log.info("results in %s", summary["output_dir"])
    return (summary["final"] or {}).get("recall") or 0.0  # what a sweeper would optimise


def refuse_foreign_targets() -> None:
    """A `_target_` outside osal's allow-list on the command line (a campaign's grid ends up here too) is refused
    before Hydra composes: Hydra builds its callbacks and launcher before main() runs."""
    try:
        check_overrides(command_line_overrides(sys.argv[1:]))
    except OsalError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    refuse_foreign_targets()
    main()
