"""DDP under SLURM: a run's processes are the SLURM tasks of its job (hydra.launcher.tasks_per_node=N), on the
real one-node cluster of tests/test_launchers.py (../shared/slurm/start.sh, root only; the tests skip, saying
why, where it cannot start, unless OSAL_REQUIRE_SLURM=1).

A 2-task job of a multirun runs one 2-process run: the pool scored in two shares per query, the records of one
process, equal to those of the same run on one machine (where osal starts the second process); a job with fewer
tasks than trainer.devices is refused with one sentence, no traceback.
"""

import os
import re
import uuid

import pytest
import yaml

import test_launchers
from osal.records.metrics import read_metrics
from test_ddp import scored_lines
from test_launchers import SLURM_SMALL, job_dirs, multirun, output_of, wait_for_states

import slurm_cluster
from conftest import assert_same_records, run_train

pytestmark = pytest.mark.slow  # real SLURM jobs of src/train.py: left out of make test-fast

slurm_partition = test_launchers.slurm_partition  # the cluster fixture (module scope: started here, stopped after)

TWO = ["trainer=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
RUN = ["dataset=digits", "trainer.enable_progress_bar=false", "logger=none", "mismatch=0.4", "al.query_size=30"]
# two tasks of one CPU each (the test node has 2); memory is per node, for both processes
SMALL = [*(a for a in SLURM_SMALL if not a.startswith("hydra.launcher.mem_gb=")), "hydra.launcher.mem_gb=4"]
MULTIRUN_LIMIT_S = 170


def ddp_args(partition, job_name, sweep, tasks):
    return ["hydra/launcher=slurm", f"hydra.launcher.partition={partition}", f"hydra.launcher.name={job_name}",
            f"hydra.launcher.tasks_per_node={tasks}", *SMALL, *TWO, *RUN, f"hydra.sweep.dir={sweep}"]


def submitit_logs(sweep, job_dir):
    """{task: (stdout, stderr)} of the SLURM job that ran `job_dir`, from submitit's folder in the sweep."""
    job_id = yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"]
    folder = sweep / ".submitit" / job_id
    logs = {}
    for out in sorted(folder.glob(f"{job_id}_*_log.out")):
        task = int(out.name[len(job_id) + 1:].split("_")[0])
        err = out.with_name(out.name.replace("_log.out", "_log.err"))
        logs[task] = (out.read_text(), err.read_text() if err.exists() else "")
    return job_id, logs


def run_multirun(args, name):
    try:
        result, seconds = multirun(args, timeout=MULTIRUN_LIMIT_S)
    except BaseException:
        slurm_cluster.cancel(name)  # whatever is left if it timed out
        raise
    return result, seconds


def test_a_two_task_slurm_job_runs_one_two_process_run(slurm_partition, tmp_path):
    sweep, name = tmp_path / "sweep", f"osal-test-{uuid.uuid4().hex[:8]}"
    common = ["al.rounds=2", "trainer.max_epochs=3"]
    local = run_train(*TWO, *RUN, *common, f"hydra.run.dir={tmp_path / 'local'}")  # osal starts the 2nd process
    assert local.returncode == 0, local.stderr[-3000:]
    result, seconds = run_multirun([*ddp_args(slurm_partition, name, sweep, tasks=2), *common], name)
    assert result.returncode == 0, output_of(result)
    dirs = job_dirs(sweep)
    assert sorted(dirs) == [0], list(sweep.iterdir())
    job_dir = dirs[0]
    job_id, logs = submitit_logs(sweep, job_dir)
    assert sorted(logs) == [0, 1], f"the job did not run as two SLURM tasks: {logs.keys()}"
    states = wait_for_states(name, ["COMPLETED"])
    assert list(states.values()) == ["COMPLETED"], states

    rows = read_metrics(job_dir / "metrics.csv")
    assert [r["round"] for r in rows] == [0, 1, 2]
    main_out, main_err = logs[0]
    scored = scored_lines(main_out)
    assert len(scored) == 2, main_out[-3000:] + main_err[-3000:]  # one line per query, from the main task alone
    for (total, shares), before in zip(scored, rows):
        assert total == before["n_unlabeled"] == sum(shares) and len(shares) == 2 and abs(shares[0] - shares[1]) <= 1
    other_out, other_err = logs[1]
    assert scored_lines(other_out) == [] and "results in" not in other_out, other_out[-3000:]
    # the processes are SLURM's tasks: none started by osal on the node
    assert "started on this machine" not in main_out + other_out
    assert "Traceback" not in main_err + other_err, (main_err + other_err)[-3000:]
    # the records of one process: no second Hydra folder or log, nothing from the other task
    names = sorted(os.listdir(job_dir))
    assert names == [".hydra", ".osal.lock", "metrics.csv", "pool_round_00.npz", "pool_round_01.npz",
                     "pool_round_02.npz", "state.npz", "summary.json", "train.log"], names
    assert main_out.count("results in") == 1
    log = (job_dir / "train.log").read_text()
    assert log.count("results in") == 1 and log.count("Job completed successfully") <= 1  # task 1 writes none
    # SLURM's two tasks compute what two processes on one machine compute, record for record
    assert_same_records(tmp_path / "local", job_dir, rounds=2)
    print(f"SLURM job of 2 tasks, one 2-process run of 2 queries: {seconds:.0f} s")


def test_a_slurm_job_with_fewer_tasks_than_devices_is_refused_with_one_sentence(slurm_partition, tmp_path):
    sweep, name = tmp_path / "sweep", f"osal-test-{uuid.uuid4().hex[:8]}"
    args = [*ddp_args(slurm_partition, name, sweep, tasks=1), "al.rounds=1", "trainer.max_epochs=1"]
    result, seconds = run_multirun(args, name)
    output = output_of(result)
    assert result.returncode != 0, output
    sentence = re.search(r"trainer\.devices x trainer\.num_nodes = 2 processes but this SLURM job has 1 task\(s\); "
                         r"submit it with hydra\.launcher\.tasks_per_node=<devices>[^\n]*", result.stderr)
    assert sentence, output
    assert "Traceback" not in result.stderr, output
    dirs = job_dirs(sweep)
    assert sorted(dirs) == [0], list(sweep.iterdir())
    assert not (dirs[0] / "metrics.csv").exists()
    _, logs = submitit_logs(sweep, dirs[0])
    assert sorted(logs) == [0]
    out, err = logs[0]
    assert "Traceback" not in out + err, (out + err)[-3000:]
    print(f"SLURM job of 1 task for 2 devices: refused after {seconds:.0f} s")
