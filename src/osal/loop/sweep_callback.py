"""A Hydra callback that keeps a sweep's tally: how many jobs finished or failed so far, and at the end."""

import logging
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from osal.records.sweep_status import describe, sweep_status

log = logging.getLogger("osal.sweep")


class SweepSummary(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
            return
        status = getattr(job_return, "status", None)
        if status is not None and status.name == "FAILED":
            log.error("job %s failed: %s", config.hydra.job.get("num", "?"), job_return._return_value)
        # the basic launcher stops the sweep with the first failure's exception after the last job,
        # before on_multirun_end: so each job also reports the tally so far
        log.info("sweep so far: %s", describe(sweep_status(config.hydra.sweep.dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        log.info("sweep %s: %s", config.hydra.sweep.dir, describe(sweep_status(config.hydra.sweep.dir)))
