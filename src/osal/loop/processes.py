"""The processes of one DDP run: started here on one machine, or by SLURM (or torchrun) across several.

A run's loop fits many fresh Trainers, and every process must take the same decisions between them (resume
where, which rounds, what to query). So the processes and their process group exist for the whole run, not
for one fit: on one machine the main process starts the others (the same command, the same run directory)
before the loop begins, and all of them join one process group that every Trainer of the run then uses
(Lightning finds it initialised and the environment variables set, and launches nothing itself). Under
SLURM (`hydra.launcher.tasks_per_node=N`) or torchrun the processes exist already and only join.

A child that fails brings the run down with one line (its own message is above it); the main process ending,
however it ends, takes the children with it.
"""

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from omegaconf import DictConfig

from osal.engine import distributed
from osal.errors import ConfigError, OsalError
from osal.knobs import ddp_processes_wanted

log = logging.getLogger(__name__)

CHILD_ENV = "OSAL_DDP_CHILD"  # set in the processes osal starts: they take part, they do not start others
DDP_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", CHILD_ENV)
# a collective that waits longer than this is a process that died or hangs: fail instead of waiting forever
TIMEOUT = timedelta(minutes=30)


def quoted(value: str) -> str:
    """A value for a Hydra override, quoted: a directory named after an override (`..._al.init_percent=6`)
    holds an `=` that Hydra's override grammar refuses unquoted."""
    return "'" + value.replace("'", "\\'") + "'"  # Hydra keeps other backslashes as they are


@dataclass
class Processes:
    """The run's processes as this one sees them."""

    rank: int = 0
    count: int = 1
    children: list = field(default_factory=list)  # the processes this one started (the main process, locally)


def started_by_a_launcher() -> Optional[str]:
    """'slurm' or 'torchrun' when an outside launcher started this run's processes, else None."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
    if os.environ.get(CHILD_ENV):
        return None
    if TorchElasticEnvironment.detect():
        return "torchrun"
    if SLURMEnvironment.detect():
        return "slurm"
    return None


def backend_for(trainer_cfg: DictConfig) -> str:
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    wants_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "nccl" if wants_gpu else "gloo"


@contextlib.contextmanager
def ddp_processes(cfg: DictConfig, hydra_cfg: DictConfig, script: str) -> Iterator[Processes]:
    """Run the body in every process of the run (one process: nothing happens); yields this one's place.

    `script`: the entry point the children run (src/train.py), with this job's own overrides.
    """
    count = ddp_processes_wanted(cfg.trainer)
    if count == 1:
        yield Processes()
        return
    saved_env = {name: os.environ.get(name) for name in DDP_VARIABLES}
    launcher = started_by_a_launcher()
    processes = Processes(count=count)
    try:
        if launcher == "slurm":
            processes.rank = join_slurm_tasks(count)
        elif launcher == "torchrun":
            processes.rank = join_torchrun(count)
        elif os.environ.get(CHILD_ENV):
            processes.rank = int(os.environ["RANK"])
        else:
            if int(cfg.trainer.get("num_nodes", 1)) > 1:
                raise ConfigError(f"trainer.num_nodes={cfg.trainer.num_nodes} needs its processes started on every "
                                  "node: run under SLURM (hydra/launcher=slurm hydra.launcher.nodes=... "
                                  "hydra.launcher.tasks_per_node=...) or torchrun, see docs/cluster.md")
            processes.children = start_children(count, hydra_cfg, script)
        if backend_for(cfg.trainer) == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend_for(cfg.trainer), init_method="env://", rank=processes.rank,
                                world_size=count, timeout=TIMEOUT)
        if processes.rank != 0:  # the main process alone reports: the others print warnings and errors only
            logging.getLogger("osal").setLevel(logging.WARNING)
            # and write nothing into the run's log file (SLURM and torchrun tasks each set up Hydra's logging)
            root = logging.getLogger()
            for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
                root.removeHandler(handler)
                handler.close()
        watch_children(processes.children)
        yield processes
        dist.barrier()  # every process done with its collectives before any closes its connections
    except BaseException as error:
        failed = failed_child(processes.children)
        stop_children(processes.children, wait=0)  # they would wait for this process in a collective
        if failed is not None and not isinstance(error, OsalError):  # what broke is the other process
            raise ProcessFailed(failed) from None
        raise
    finally:
        stop_children(processes.children)
        if dist.is_initialized():
            dist.destroy_process_group()
        distributed.forget_group()
        for name, value in saved_env.items():  # a joblib worker runs the next job with a clean environment
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def join_slurm_tasks(count: int) -> int:
    """This task's rank; the job must have exactly `count` tasks (devices x nodes)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment
    tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if tasks != count:
        raise ConfigError(f"trainer.devices x trainer.num_nodes = {count} processes but this SLURM job has {tasks} "
                          f"task(s); submit it with hydra.launcher.tasks_per_node=<devices> (and "
                          f"hydra.launcher.nodes=<num_nodes>, gpus_per_node=<devices>) so that there are {count}")
    environment = SLURMEnvironment()
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = environment.main_address, str(environment.main_port)
    os.environ.setdefault("LOCAL_RANK", str(environment.local_rank()))
    return environment.global_rank()


def join_torchrun(count: int) -> int:
    world = int(os.environ["WORLD_SIZE"])
    if world != count:
        raise ConfigError(f"trainer.devices x trainer.num_nodes = {count} processes but torchrun started {world}; "
                          "give torchrun --nproc-per-node=<devices> --nnodes=<num_nodes>")
    return int(os.environ["RANK"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_command(hydra_cfg: DictConfig, script: str) -> list:
    """The command of a child: this job's config and overrides, in this job's run directory, writing no Hydra
    files or log of its own (the main process writes those)."""
    command = [sys.executable, os.path.abspath(script)]
    if hydra_cfg.job.config_name not in (None, "train"):
        command += ["--config-name", str(hydra_cfg.job.config_name)]
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "command-line":  # --config-dir
            command += ["--config-dir", str(source.path).split("://", 1)[-1]]
    ours = ("hydra.run.dir=", "hydra.output_subdir=", "hydra/job_logging=", "hydra.job_logging=")
    command += [o for o in hydra_cfg.overrides.task if not o.startswith(ours)]
    command += [f"hydra.run.dir={quoted(str(hydra_cfg.runtime.output_dir))}", "hydra.output_subdir=null",
                "hydra/job_logging=none"]
    return command


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop_children still ends them when the main process ends normally


def start_children(count: int, hydra_cfg: DictConfig, script: str) -> list:
    """Start ranks 1..count-1 on this machine; this process becomes rank 0."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(count),
                      NODE_RANK="0", LOCAL_RANK="0", RANK="0")
    command = child_command(hydra_cfg, script)
    children = []
    for rank in range(1, count):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), CHILD_ENV: "1"}
        # a session of its own: Ctrl-C reaches the main process alone, which then ends the children
        children.append(subprocess.Popen(command, env=env, preexec_fn=die_with_parent, start_new_session=True))
    log.info("DDP: %d processes (this one and %d started on this machine)", count, count - 1)
    return children


class ProcessFailed(OsalError):
    """Another process of the run failed; its own message was printed above."""


def failure_line(rank: int, code: int) -> str:
    return (f"DDP process {rank} ended with exit status {code} (its message is above); completed rounds are "
            "kept: run the same command again to continue")


def failed_child(children: list, grace: float = 3.0) -> Optional[str]:
    """The line for a child that ended with an error (waiting `grace` seconds for one to end), else None."""
    deadline = time.monotonic() + grace
    while children:
        for rank, child in enumerate(children, start=1):
            code = child.poll()
            if code not in (None, 0):
                return failure_line(rank, code)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    return None


def watch_children(children: list) -> None:
    """A child that exits with an error ends the main process too: it would wait for it in the next
    collective until TIMEOUT. Completed rounds are on disk already."""
    if not children:
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            for rank, child in enumerate(children, start=1):
                code = child.poll()
                if code not in (None, 0):
                    print(f"error: {failure_line(rank, code)}", file=sys.stderr, flush=True)
                    stop_children(children)
                    os._exit(1)
            if all(child.poll() == 0 for child in children):
                return

    threading.Thread(target=watch, name="osal-ddp-watch", daemon=True).start()


def stop_children(children: list, wait: float = 30.0) -> None:
    """End the children: they finish the run with the main process and exit on their own within `wait`
    seconds, else (the main process is leaving early) they are killed."""
    deadline = time.monotonic() + wait
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()
