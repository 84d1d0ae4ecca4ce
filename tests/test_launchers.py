"""Many jobs at once: the local parallel launcher (joblib) and SLURM (submitit) on a real one-node cluster.

Every multirun here is the real `src/train.py -m ...` started as a program, on the embedded digits
data, one round of one epoch per job. The SLURM tests start ../shared/slurm/start.sh (root only; the
first start on a machine installs its packages) and stop it again; they skip, saying why, where the
cluster cannot start, unless OSAL_REQUIRE_SLURM=1 (set by .ci/run), which makes that a failure.
"""

import csv
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import slurm_cluster
from conftest import CONF, ROOT, run_train

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

TINY = ["dataset=digits", "trainer=cpu", "trainer.enable_progress_bar=false", "logger=none",
        "al.rounds=1", "trainer.max_epochs=1"]
# what a one-epoch digits job needs from the test cluster (the config's defaults are a GPU paper run)
SLURM_SMALL = ["hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
               "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=5"]
KILLED_JOB_LIMIT_S = 180  # a multirun with a job killed hard must end within this


def multirun(args, timeout, env=None):
    """Run `python src/train.py -m ARGS` from the repository root; (process, seconds it took)."""
    start = time.monotonic()
    result = run_train("-m", *args, timeout=timeout, env=env)
    return result, time.monotonic() - start


def output_of(result) -> str:
    return (result.stdout + result.stderr)[-6000:]


def metrics_rows(job_dir):
    with open(job_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def job_dirs(sweep):
    """{job number: job directory} (each is <sweep dir>/<job.num>_<what ran>)."""
    return {int(p.name.split("_", 1)[0]): p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()}


def assert_one_round(job_dir):
    rows = metrics_rows(job_dir)
    assert [int(r["round"]) for r in rows] == [0, 1], f"{job_dir}/metrics.csv: {rows}"
    assert (job_dir / "summary.json").exists()


# ---- configs ----------------------------------------------------------------------------------

def compose_launcher(conf_dir, overrides):
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra.launcher


def test_slurm_launcher_config_exposes_the_cluster_knobs():
    launcher = compose_launcher(CONF, ["hydra/launcher=slurm"])
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    for key in ("partition", "account", "qos", "timeout_min", "gpus_per_node", "gres", "cpus_per_task",
                "mem_gb", "array_parallelism", "max_num_timeout", "signal_delay_s", "setup"):
        assert key in launcher, key
    assert launcher.gpus_per_node == 1 and launcher.timeout_min > 0
    # submitit's folder (sbatch script, logs, pickles) lives in the sweep directory
    raw = OmegaConf.to_container(launcher, resolve=False)
    assert raw["submitit_folder"].startswith("${hydra.sweep.dir}/")


def test_local_launcher_config_is_joblib():
    launcher = compose_launcher(CONF, ["hydra/launcher=local"])
    assert launcher._target_.endswith("joblib_launcher.JoblibLauncher")
    assert launcher.n_jobs == 2


def test_site_files_override_their_launcher_only(tmp_path):
    """conf/local/slurm.yaml (git-ignored) sets this site's SLURM values; the command line still
    wins, and other launchers never see the file. Checked on a copy of conf/."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "local" / "slurm.yaml").write_text("partition: gpu\naccount: proj42\ntimeout_min: 600\n"
                                               "setup: [module load cuda]\n")
    (conf / "local" / "local.yaml").write_text("n_jobs: 8\n")
    site = compose_launcher(conf, ["hydra/launcher=slurm"])
    assert (site.partition, site.account, site.timeout_min) == ("gpu", "proj42", 600)
    assert list(site.setup) == ["module load cuda"] and site.mem_gb == 32  # the rest: slurm.yaml's
    assert compose_launcher(conf, ["hydra/launcher=slurm", "hydra.launcher.partition=a100"]).partition == "a100"
    assert compose_launcher(conf, ["hydra/launcher=local"]).n_jobs == 8
    assert "partition" not in compose_launcher(conf, [])  # the basic launcher is untouched


# ---- local parallel jobs (joblib) -------------------------------------------------------------

def test_local_launcher_runs_a_two_job_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    result, seconds = multirun(["hydra/launcher=local", "seed=1,2", *TINY, f"hydra.sweep.dir={sweep}"], timeout=400)
    assert result.returncode == 0, output_of(result)
    dirs = job_dirs(sweep)
    assert sorted(dirs) == [0, 1], list(sweep.iterdir())
    for d in dirs.values():
        assert_one_round(d)
    launcher = yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]["launcher"]
    assert launcher["_target_"].endswith("JoblibLauncher") and launcher["n_jobs"] == 2
    print(f"joblib multirun of 2 jobs: {seconds:.0f} s")


# ---- SLURM (submitit) on a real one-node cluster ----------------------------------------------

@pytest.fixture(scope="module")
def slurm_partition():
    try:
        with slurm_cluster.local_cluster() as partition:
            yield partition
    except slurm_cluster.ClusterUnavailable as why:
        message = f"no local SLURM cluster: {why}"
        if os.environ.get("OSAL_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def slurm_args(partition, job_name, sweep):
    return ["hydra/launcher=slurm", f"hydra.launcher.partition={partition}", f"hydra.launcher.name={job_name}",
            *SLURM_SMALL, *TINY, f"hydra.sweep.dir={sweep}"]


def wait_for_states(job_name, expected, timeout=60):
    """sacct's {array task: state} once it equals `expected` (records reach the database a little late)."""
    end = time.monotonic() + timeout
    while True:
        states = slurm_cluster.sacct_states(job_name)
        if sorted(states.values()) == sorted(expected) or time.monotonic() > end:
            return states
        time.sleep(1)


def test_slurm_multirun_collects_every_job(slurm_partition, tmp_path):
    sweep, name = tmp_path / "sweep", f"osal-test-{uuid.uuid4().hex[:8]}"
    try:
        result, seconds = multirun([*slurm_args(slurm_partition, name, sweep), "seed=1,2"], timeout=400)
    except BaseException:
        slurm_cluster.cancel(name)  # whatever is left if it timed out
        raise
    # no scancel after success: a task whose result is in may still be exiting, and would read CANCELLED
    assert result.returncode == 0, output_of(result)
    dirs = job_dirs(sweep)
    assert sorted(dirs) == [0, 1], list(sweep.iterdir())
    states = wait_for_states(name, ["COMPLETED", "COMPLETED"])
    assert sorted(states.values()) == ["COMPLETED", "COMPLETED"], states
    for d in dirs.values():
        assert_one_round(d)
        # each job ran as a task of one SLURM job array; submitit's logs sit in the sweep directory
        job_id = yaml.safe_load((d / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"]
        assert job_id in states, (job_id, states)
        assert (sweep / ".submitit" / job_id / f"{job_id}_0_log.out").exists()
    print(f"SLURM multirun of 2 jobs: {seconds:.0f} s")


def test_slurm_job_killed_hard_fails_the_multirun(slurm_partition, tmp_path):
    """Job 1 SIGKILLs itself as it starts: the multirun must end, non-zero, naming the failed job,
    instead of waiting forever for a result the job will never write."""
    sweep, name = tmp_path / "sweep", f"osal-test-{uuid.uuid4().hex[:8]}"
    paths = [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]
    # the test's own Hydra callback is not one osal builds: the person's environment allows it (osal.targets)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)), OSAL_EXTRA_TARGETS="slurm_cluster.HardKill")
    args = [*slurm_args(slurm_partition, name, sweep), "seed=1,2",
            "+hydra.callbacks.hard_kill={_target_:slurm_cluster.HardKill,num:1}"]
    try:
        result, seconds = multirun(args, timeout=KILLED_JOB_LIMIT_S, env=env)
    except subprocess.TimeoutExpired:
        states = slurm_cluster.sacct_states(name)
        slurm_cluster.cancel(name)
        pytest.fail(f"the multirun still waited {KILLED_JOB_LIMIT_S} s after its job 1 was killed (sacct: {states})")
    output = output_of(result)
    assert result.returncode != 0, output
    states = wait_for_states(name, ["COMPLETED", "FAILED"])
    killed = [task for task, state in states.items() if state == "FAILED"]
    assert len(killed) == 1 and killed[0].endswith("_1"), states
    # the error names the job and what SLURM says of it
    assert re.search(rf"{killed[0]}.*has not produced any output \(state: FAILED\)", output, re.S), output
    dirs = job_dirs(sweep)
    assert_one_round(dirs[0])  # the other job still finished
    assert not (dirs[1] / "metrics.csv").exists()
    print(f"SLURM multirun with a job killed hard: failed after {seconds:.0f} s")
