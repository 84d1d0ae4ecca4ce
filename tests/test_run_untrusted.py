"""`src/train.py` on a run directory that may come from someone else (committed, cloned, a folder reused by hand):
its files are untrusted input.

Nothing is written into a directory before it is known to be this run's or empty of what a run writes: a path a
run would write that osal did not write, a run of another config (by its state.npz or its .hydra/config.yaml
alone), a damaged record, an unknown experiment and a deadline already past each end in one sentence with the
directory exactly as it was. The fast tests lay a run's records out with osal's own writers instead of training.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf, open_dict

from osal.data.pool import PoolState
from osal.errors import ConfigError, OsalError
from osal.loop.experiment import Experiment, where_it_stands
from osal.loop.hydra_files import hydra_files, save_hydra_files
from osal.records.metrics import COLUMNS, MetricsTable
from osal.records.run_files import is_run_record
from osal.records.run_state import RunState
from osal.stored import DamagedFileError

from conftest import CONF, FAST, ROOT, run_train

SMALL = ["mismatch=0.4", "al.rounds=1", "trainer.max_epochs=1"]
# what the command-line tests run: the CSV logger on, so lightning_logs/ is written too
CLI = ["trainer=cpu", "trainer.enable_progress_bar=false", *SMALL]


def snapshot(folder):
    """Every path under `folder`: a file's bytes, None for a folder. Equal snapshots: nothing changed on disk."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def composed(overrides):
    """(task config, Hydra's own config) of `train.yaml` with `overrides`, as Hydra composes them for a job."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, hydra_cfg


def lay_out_run(folder, overrides=()):
    """`folder` as a run of `overrides` leaves it after its round 0, written by osal's own writers (no training):
    .hydra/, metrics.csv, pool_round_00.npz and state.npz."""
    cfg, hydra_cfg = composed([*FAST, *SMALL, *overrides])
    folder.mkdir(parents=True, exist_ok=True)
    save_hydra_files(folder, hydra_files(cfg, hydra_cfg))
    size = 100  # not the digits' 1437: a run that got as far as reading the data refuses it (tested below)
    pool = PoolState(size)
    MetricsTable(folder / "metrics.csv").append({column: 0 for column in COLUMNS})
    pool.save(folder / "pool_round_00.npz")
    RunState(0, {**pool.state_dict(), "answers": np.zeros(size, dtype=np.int64)},
             np.random.default_rng(1).bit_generator.state, {}, OmegaConf.to_container(cfg, resolve=True),
             {}).save(folder)
    return cfg


def experiment(folder, *overrides):
    cfg, _ = composed([*FAST, *SMALL, *overrides])
    return Experiment(cfg, folder)


# -- 5. an unknown experiment -------------------------------------------------------------------------------

def test_an_unknown_experiment_is_refused_with_the_list_of_experiments():
    with pytest.raises(MissingConfigException) as caught:
        composed(["experiment=mnist_recal"])
    message = str(caught.value)
    assert "experiment/mnist_recal" in message and "mnist_recall" in message and "reproduce_cifar10" in message
    composed(["experiment=mnist_recall"])  # a known one still composes, and none at all is the default
    assert "campaign" not in composed([])[0]


@pytest.mark.slow
def test_an_unknown_experiment_on_the_command_line_lists_the_experiments_and_writes_nothing(tmp_path):
    result = run_train(*CLI, "experiment=mnist_recal", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Could not find 'experiment/mnist_recal'" in result.stderr and "mnist_recall" in result.stderr
    assert "classes (" not in result.stdout and not (tmp_path / "run").exists()


# -- 3. every path a run writes, found holding what osal did not write --------------------------------------

def users_files(folder, which):
    """`folder` holding the user's own file (or folder) at one of the paths a run writes."""
    folder.mkdir(parents=True, exist_ok=True)
    own = {
        "lightning_logs/metrics.csv": "epoch,step,train_loss\n0,10,0.5\n",
        "lightning_logs/hparams.yaml": "lr: 0.1\n",
        "train.log": "my notes on this experiment\n",
        ".hydra/config.yaml": "db:\n  driver: mysql\n",
        ".hydra/overrides.yaml": "mine: true\n",
        ".hydra/hydra.yaml": "- a list\n",
        "wandb/debug.log": "someone else's W&B run\n",
        "summary.json": "[1, 2]\n",
        "metrics.csv": "epoch,loss\n1,0.5\n",
        ".osal.lock": "my lock\n",
    }
    if which in own:
        path = folder / which
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(own[which])
    elif which == "summary.json number":
        (folder / "summary.json").write_text("5\n")
    elif which in ("pool_round_00.npz folder", "state.npz folder", "metrics.csv folder", "train.log folder"):
        (folder / which.split()[0] / "inside").mkdir(parents=True)
    elif which in (".hydra file", "lightning_logs file"):
        (folder / which.split()[0]).write_text("a file where a run keeps a folder\n")
    else:
        raise AssertionError(which)
    return snapshot(folder)


FOREIGN = ["lightning_logs/metrics.csv", "lightning_logs/hparams.yaml", "train.log", ".hydra/config.yaml",
           ".hydra/overrides.yaml", ".hydra/hydra.yaml", "wandb/debug.log", "summary.json", "summary.json number",
           "metrics.csv", ".osal.lock", "pool_round_00.npz folder", "state.npz folder", "metrics.csv folder",
           "train.log folder", ".hydra file", "lightning_logs file"]


@pytest.mark.parametrize("which", FOREIGN)
def test_a_path_a_run_writes_holding_what_osal_did_not_write_is_refused_and_left_as_it_was(tmp_path, which):
    run_dir = tmp_path / "run"
    before = users_files(run_dir, which)
    with pytest.raises(OsalError) as caught:
        experiment(run_dir).run()
    message = str(caught.value)
    named = str(run_dir / which.split()[0].split("/")[0])
    assert named in message and ("hydra.run.dir" in message or "move it away" in message), message
    assert snapshot(run_dir) == before  # not even a lock file


def test_the_users_own_files_beside_a_run_of_this_config_are_still_refused(tmp_path):
    run_dir = tmp_path / "run"
    lay_out_run(run_dir)
    (run_dir / "lightning_logs").mkdir()
    (run_dir / "lightning_logs" / "metrics.csv").write_text("epoch,step,train_loss\n0,10,0.5\n")
    before = snapshot(run_dir)
    with pytest.raises(ConfigError, match="lightning_logs/metrics.csv, which is not a record of an osal run"):
        experiment(run_dir, "al.rounds=2").run()
    assert snapshot(run_dir) == before


# -- 2. a run of another config, known by its state.npz or its .hydra/config.yaml alone ----------------------

@pytest.mark.parametrize("kept", ["state and .hydra", ".hydra alone"])
def test_a_run_of_another_config_is_refused_and_left_as_it_was(tmp_path, kept):
    run_dir = tmp_path / "run"
    lay_out_run(run_dir)
    if kept == ".hydra alone":  # a run that never completed a round
        for name in ("metrics.csv", "pool_round_00.npz", "state.npz"):
            (run_dir / name).unlink()
    before = snapshot(run_dir)
    with pytest.raises(ConfigError) as caught:
        experiment(run_dir, "strategy=random", "mismatch=0.3", "seed=5").run()
    message = str(caught.value)
    assert f"{run_dir} holds a run with a different config" in message and "seed" in message, message
    assert snapshot(run_dir) == before


# -- damaged records ---------------------------------------------------------------------------------------

def damage(run_dir, how):
    state = run_dir / "state.npz"
    if how == "conflict in metrics.csv":
        lines = (run_dir / "metrics.csv").read_text().splitlines()
        (run_dir / "metrics.csv").write_text("\n".join([lines[0], "<<<<<<< HEAD", lines[1], "=======", lines[1],
                                                        ">>>>>>> theirs"]) + "\n")
    elif how == "extra cell in metrics.csv":
        (run_dir / "metrics.csv").write_text((run_dir / "metrics.csv").read_text().rstrip("\n") + ",7\n")
    elif how == "text in metrics.csv":
        text = (run_dir / "metrics.csv").read_text()
        (run_dir / "metrics.csv").write_text(text.replace("\n0,0,", "\n0,many,", 1))
    elif how == "LFS pointer state":
        state.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 4096\n")
    elif how == "truncated state":
        state.write_bytes(state.read_bytes()[:200])
    elif how in ("object array in state", "bad meta JSON", "meta without round", "state without answers"):
        with np.load(state) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays["meta"]))
        if how == "object array in state":
            arrays["answers"] = np.array([{"a": 1}], dtype=object)
        elif how == "bad meta JSON":
            arrays["meta"] = np.array('{"round": 0, ')
        elif how == "meta without round":
            del meta["round"]
            arrays["meta"] = np.array(json.dumps(meta))
        else:
            del arrays["answers"]
        with open(state, "wb") as f:
            np.savez(f, **arrays)
    elif how == "truncated pool round":
        path = run_dir / "pool_round_00.npz"
        path.write_bytes(path.read_bytes()[:100])
    elif how == "invalid .hydra/config.yaml":
        (run_dir / ".hydra" / "config.yaml").write_text("al: [rounds: 1\n")
    else:
        raise AssertionError(how)


DAMAGES = {
    "conflict in metrics.csv": ("metrics.csv", "merge-conflict marker"),
    "text in metrics.csv": ("metrics.csv", "'many'"),
    "extra cell in metrics.csv": ("metrics.csv", "line 2 has another number of cells than its header"),
    "LFS pointer state": ("state.npz", "Git LFS pointer"),
    "truncated state": ("state.npz", "damaged"),
    "object array in state": ("state.npz", "object array"),
    "bad meta JSON": ("state.npz", "not valid JSON"),
    "meta without round": ("state.npz", "lacks round"),
    "state without answers": ("state.npz", "lacks answers"),
    "truncated pool round": ("pool_round_00.npz", "damaged"),
    "invalid .hydra/config.yaml": (".hydra/config.yaml", "not a record of an osal run"),
}


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_record_names_the_file_and_what_to_do_and_changes_nothing(tmp_path, how):
    run_dir = tmp_path / "run"
    lay_out_run(run_dir)
    damage(run_dir, how)
    before = snapshot(run_dir)
    name, said = DAMAGES[how]
    with pytest.raises(OsalError) as caught:
        experiment(run_dir, "al.rounds=2").run()  # resuming it
    message = str(caught.value)
    assert f"{run_dir / name}" in message and said in message, message
    assert any(fix in message for fix in ("restore", "move it away", "resolve the conflict")), message
    assert snapshot(run_dir) == before
    # what an interrupted or failed command says it kept: a sentence, not numpy's or json's error
    kept = where_it_stands(run_dir)
    if name == "state.npz":
        assert f"{run_dir / 'state.npz'} does not read back" in kept, kept
    else:
        assert f"the run in {run_dir} keeps rounds 0..0" == kept, kept


def test_a_state_that_does_not_fit_the_data_is_one_sentence(tmp_path):
    lay_out_run(tmp_path)  # its pool has 100 examples, the digits' training split 1437
    before = snapshot(tmp_path)
    with pytest.raises(DamagedFileError, match=r"state.npz does not fit this run's data \(answers have 100 entries"):
        experiment(tmp_path, "al.rounds=2").run()
    after = snapshot(tmp_path)
    after.pop(".osal.lock")  # the directory was this run's: the run held it while it read the data
    assert after == before


def test_a_truncated_state_is_damaged_not_someone_elses(tmp_path):
    lay_out_run(tmp_path)
    damage(tmp_path, "truncated state")
    with pytest.raises(DamagedFileError, match="state.npz is damaged"):
        is_run_record(str(tmp_path / "state.npz"))


# -- a deadline already past ---------------------------------------------------------------------------------

@pytest.mark.parametrize("before", ["empty", "one round done"])
def test_a_deadline_already_past_when_the_command_started_runs_nothing(tmp_path, before):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if before == "one round done":
        lay_out_run(run_dir)
    was = snapshot(run_dir)
    summary = experiment(run_dir, "al.rounds=2", "deadline=1000").run()
    assert "had already passed when this command started" in summary["stopped"], summary
    kept = "rounds 0..0" if before == "one round done" else "no round"
    assert kept in summary["stopped"]
    assert snapshot(run_dir) == was


# -- the same cases from the command line ----------------------------------------------------------------------

def one_sentence(result, *phrases):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    lines = [text for text in result.stderr.splitlines() if text.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow
def test_a_run_directory_that_is_a_file_is_refused_before_hydra_writes_there(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    one_sentence(run_train(*CLI, f"hydra.run.dir={path}"), f"{path} is a file, not a folder", "hydra.run.dir")
    assert path.read_text() == "my notes\n"


@pytest.mark.slow
def test_a_config_refused_in_a_new_folder_still_leaves_its_hydra_files_there_for_the_sweep_tally(tmp_path):
    run_dir = tmp_path / "run"  # made by Hydra for this job: empty, so this command's to write
    one_sentence(run_train(*CLI, "mismatch=7", f"hydra.run.dir={run_dir}"), "mismatch")
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert "mismatch=7" in (run_dir / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.slow
def test_a_refused_command_leaves_the_run_it_refuses_as_it_was_and_a_resume_keeps_its_hydra_files(tmp_path):
    run_dir = tmp_path / "runs" / "R"
    first = run_train(*CLI, f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert {p.name for p in (run_dir / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    before = snapshot(run_dir)
    other = run_train(*CLI, "strategy=random", "mismatch=0.3", "seed=5", f"hydra.run.dir={run_dir}")
    one_sentence(other, "holds a run with a different config")
    assert snapshot(run_dir) == before
    report = subprocess.run([sys.executable, "src/report.py", str(tmp_path / "runs"), "--out",
                             str(tmp_path / "report"), "--no-figures"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    table = (tmp_path / "report" / "report.md").read_text()
    assert report.returncode == 0 and "| lfosa |" in table and "random" not in table, table
    # the same run, continued: its .hydra/ files are this command's, its log holds both commands
    again = run_train(*CLI, "al.rounds=2", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0 and f"resuming {run_dir} after round 1" in again.stdout, again.stderr[-3000:]
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["al"]["rounds"] == 2
    assert "al.rounds=2" in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["name"] == "train"
    assert (run_dir / "train.log").read_text().count("[osal.loop.experiment][INFO] - digits, mismatch") == 2


@pytest.mark.slow
def test_a_folder_of_the_users_own_files_is_refused_from_the_command_line_and_left_as_it_was(tmp_path):
    run_dir = tmp_path / "mine"
    (run_dir / "lightning_logs").mkdir(parents=True)
    (run_dir / "lightning_logs" / "metrics.csv").write_text("epoch,step,train_loss\n0,10,0.5\n")
    (run_dir / "lightning_logs" / "hparams.yaml").write_text("lr: 0.1\n")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("db:\n  driver: mysql\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("- db=mysql\n")
    before = snapshot(run_dir)
    result = run_train(*CLI, f"hydra.run.dir={run_dir}")
    one_sentence(result, "which is not a record of an osal run", "hydra.run.dir")
    assert snapshot(run_dir) == before  # no train.log, no lock file, their .hydra/ and logs as they were


@pytest.mark.slow
def test_a_multirun_writes_each_jobs_hydra_files_and_a_job_of_another_config_is_left_as_it_was(tmp_path):
    first = run_train("-m", *CLI, "logger=none", "seed=1,2", f"hydra.sweep.dir={tmp_path}")
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_digits_mismatch0.4_lfosa_seed1", "1_digits_mismatch0.4_lfosa_seed2"]
    for number, job in enumerate(jobs):
        assert yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"] == number
        assert yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["seed"] == number + 1
        assert "results in" in (job / "train.log").read_text()
    before = snapshot(jobs[0])
    # the same sweep directory, job 0 now of another query size: refused, the others' sweep goes on
    second = run_train("-m", *CLI, "logger=none", "seed=1", "al.query_size=20", f"hydra.sweep.dir={tmp_path}")
    assert second.returncode != 0 and "Traceback" not in second.stderr, second.stderr[-3000:]
    assert "holds a run with a different config (differs in al.query_size" in second.stderr
    assert snapshot(jobs[0]) == before


@pytest.mark.slow
def test_a_damaged_state_from_the_command_line_is_one_sentence_and_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    assert run_train(*CLI, f"hydra.run.dir={run_dir}").returncode == 0
    damage(run_dir, "LFS pointer state")
    before = snapshot(run_dir)
    result = run_train(*CLI, "al.rounds=2", f"hydra.run.dir={run_dir}")
    one_sentence(result, f"{run_dir}/state.npz is a Git LFS pointer", "git lfs pull")
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_a_deadline_already_past_from_the_command_line_trains_nothing_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(*CLI, f"deadline={int(time.time()) - 60}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]  # as for any deadline stop: the campaign counts it so
    assert "had already passed when this command started" in result.stdout
    assert "classes (" not in result.stdout and snapshot(run_dir) == {}


def test_what_a_stopped_run_kept_names_its_directory_relative_to_the_working_directory(tmp_path, monkeypatch):
    # the line ends up in logs a campaign commits: no one's home directory in it
    lay_out_run(tmp_path / "runs" / "a")
    monkeypatch.chdir(tmp_path)
    assert where_it_stands(tmp_path / "runs" / "a") == f"the run in {os.path.join('runs', 'a')} keeps rounds 0..0"
    assert where_it_stands(tmp_path / "runs" / "b") == (
        f"no round of the run in {os.path.join('runs', 'b')} was completed, so nothing of it is kept")
