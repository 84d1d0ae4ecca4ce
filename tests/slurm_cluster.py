"""Helpers of tests/test_launchers.py: a throw-away one-node SLURM cluster, and a job that dies hard.

The cluster is ../shared/slurm/start.sh (munge, slurmctld, slurmd, and MariaDB + slurmdbd so that
`sacct`, which submitit polls, knows about jobs that died). It needs root; the first start on a
machine apt-installs the packages (about 30 s), later starts take about 10 s. `local_cluster()`
stops, with stop.sh, exactly a cluster it started, and leaves one that was already running alone.
"""

import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback

ROOT = Path(__file__).resolve().parents[1]
SLURM_SCRIPTS = Path(os.environ.get("OSAL_SLURM_SCRIPTS", ROOT.parent / "shared" / "slurm"))
STATE_DIR = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/slurm-local"))
# what start.sh installs (with its default SLURM_WITH_DBD=1)
PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client", "slurmdbd", "mariadb-server", "mariadb-client")
START_TIMEOUT_S = 900  # a first start includes apt-get update + install


class ClusterUnavailable(Exception):
    """The cluster cannot start on this machine (the tests skip, saying why)."""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def missing_packages() -> list:
    missing = []
    for name in PACKAGES:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if "install ok installed" not in status.stdout:
            missing.append(name)
    return missing


def _answers() -> bool:
    """A cluster answers: every daemon in start.sh's PID file runs and sinfo reaches slurmctld."""
    pids = STATE_DIR / "pids"
    if not pids.exists():
        return False
    for line in pids.read_text().split("\n"):
        if line.strip() and not Path(f"/proc/{line.split()[-1]}").exists():
            return False  # a daemon died: start.sh calls that stale
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def default_partition() -> str:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout.split()
    marked = [p for p in out if p.endswith("*")]
    return (marked or out)[0].rstrip("*")


def _script(name: str) -> Path:
    path = SLURM_SCRIPTS / name
    if not path.is_file():
        raise ClusterUnavailable(f"{path} not found (set OSAL_SLURM_SCRIPTS to the folder with start.sh/stop.sh)")
    return path


def _stop(stop_sh: Path) -> None:
    result = subprocess.run(["bash", str(stop_sh)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"stop.sh failed:\n{_tail(result.stdout + result.stderr)}")


@contextmanager
def local_cluster():
    """Yield the default partition of a running local cluster, started here when none runs."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise ClusterUnavailable("the local SLURM cluster needs root (start.sh runs daemons, writes /etc/slurm)")
    start_sh, stop_sh = _script("start.sh"), _script("stop.sh")
    if _answers():
        yield default_partition()  # somebody else's cluster: use it, do not stop it
        return
    if (STATE_DIR / "pids").exists():
        # a cluster left half-dead by an earlier start (start.sh refuses to start over it): stop.sh
        # stops what that start recorded, and nothing else
        _stop(stop_sh)
    try:
        result = subprocess.run(["bash", str(start_sh)], capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if result.returncode != 0:
            output = _tail(result.stdout + result.stderr)
            missing = missing_packages()
            if missing:
                raise ClusterUnavailable(f"start.sh could not install {' '.join(missing)}:\n{output}")
            raise RuntimeError(f"start.sh failed although its packages are installed:\n{output}")
        yield default_partition()
    finally:
        _stop(stop_sh)


def sacct_states(job_name: str) -> dict:
    """{array task id: state} of the jobs named `job_name`, from the accounting database."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", f"--name={job_name}", "-o", "JobID,State"],
                         capture_output=True, text=True, check=True).stdout
    states = {}
    for line in out.splitlines():  # one "id|state" a line; a state may read "CANCELLED by 0"
        if "|" in line:
            job, state = line.split("|", 1)
            states[job.strip()] = state.split()[0] if state.split() else ""
    return states


def cancel(job_name: str) -> None:
    subprocess.run(["scancel", f"--name={job_name}"], capture_output=True)


class HardKill(Callback):
    """Hydra callback: job number `num` of a multirun SIGKILLs itself as it starts, the way the
    out-of-memory killer or a node failure ends a job: no exception, no result file, no exit code
    of its own. Used as `+hydra.callbacks.hard_kill={_target_:slurm_cluster.HardKill,num:1}`, with
    tests/ on PYTHONPATH (sbatch passes the submitting environment on to the jobs)."""

    def __init__(self, num: int = 1) -> None:
        self.num = num

    def on_job_start(self, config, **kwargs) -> None:
        if config.hydra.job.get("num") == self.num:
            os.kill(os.getpid(), signal.SIGKILL)
