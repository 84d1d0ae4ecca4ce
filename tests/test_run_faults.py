"""`src/train.py` when the machine or the person gets in the way: read-only and full disks, Ctrl-C, a W&B
logger that cannot start, a second command on the same run, a run directory holding someone else's files.

Each ends in one sentence and a non-zero exit, no traceback, and a run that continues where it stopped.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from osal.folders import exclusive_use
from osal.records.metrics import read_metrics
from osal.records.run_state import load_state

from conftest import ROOT, run_train
from small_disks import make_read_only, small_disk

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

RUN = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none", "mismatch=0.4", "al.rounds=3",
       "trainer.max_epochs=1"]


def one_sentence(result, *phrases):
    """Exit 2, no traceback, the phrases in the error line."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    line = [text for text in result.stderr.splitlines() if text.startswith("error: ")]
    assert len(line) == 1, result.stderr[-3000:]
    for phrase in phrases:
        assert phrase in line[0], line[0]
    return line[0]


def test_a_read_only_output_folder_is_refused_before_hydra_writes_there(tmp_path):
    with small_disk(tmp_path / "disk", 512) as disk:
        make_read_only(disk)
        single = run_train(*RUN, f"hydra.run.dir={disk}/run")
        one_sentence(single, f"cannot write the output folder {disk}/run", "read-only", "hydra.run.dir")
        sweep = run_train("-m", *RUN, "seed=1,2", f"hydra.sweep.dir={disk}/sweep")
        one_sentence(sweep, "read-only", "hydra.sweep.dir")


def fill(folder) -> str:
    """Fill the disk holding `folder` to the last byte; returns the filler's path (delete it to free the space)."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    return path


def test_a_disk_that_fills_mid_run_is_one_sentence_and_the_run_continues_once_there_is_room(tmp_path):
    with small_disk(tmp_path / "disk", 4096) as disk:
        run_dir = f"{disk}/run"
        slow = [*RUN, "logger=csv", "trainer.max_epochs=30", f"hydra.run.dir={run_dir}"]
        process = subprocess.Popen([sys.executable, "src/train.py", *slow], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None and not os.path.exists(f"{run_dir}/state.npz"):
            time.sleep(0.01)
        filler = fill(disk)  # the disk fills while round 1 trains
        stdout, stderr = process.communicate(timeout=300)
        full = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        line = one_sentence(full, "the disk is full (no space left on device)", f"the run in {run_dir} keeps "
                            "rounds 0..", "run the same command again to continue")
        kept = load_state(run_dir).last_round
        assert f"rounds 0..{kept}" in line and kept < 3
        assert not [n for n in os.listdir(run_dir) if n.startswith(".tmp-")]  # nothing half-written
        assert [r["round"] for r in read_metrics(f"{run_dir}/metrics.csv")][:kept + 1] == list(range(kept + 1))
        os.remove(filler)  # room again
        again = run_train(*slow)
        assert again.returncode == 0, again.stderr[-3000:]
        assert f"resuming {run_dir} after round {kept}" in again.stdout
        assert [r["round"] for r in read_metrics(f"{run_dir}/metrics.csv")] == [0, 1, 2, 3]


def test_ctrl_c_says_what_was_kept_and_the_csv_log_keeps_every_round_after_the_resume(tmp_path):
    slow = [*RUN, "logger=csv", "trainer.max_epochs=30", "al.rounds=4", f"hydra.run.dir={tmp_path}"]
    process = subprocess.Popen([sys.executable, "src/train.py", *slow], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if (tmp_path / "state.npz").exists() and load_state(tmp_path).last_round >= 1:
            time.sleep(0.1)  # into round 2's fits
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    kept = load_state(tmp_path).last_round
    assert kept < 4, "the run finished before Ctrl-C"
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1] == (f"interrupted: the run in {tmp_path} keeps rounds 0..{kept}; "
                                               "run the same command again to continue")
    again = run_train(*slow)
    assert again.returncode == 0, again.stderr[-3000:]
    # Lightning's CSV log is rewritten by the resumed run: it holds every round, not only the new ones
    logged = read_metrics(tmp_path / "lightning_logs" / "metrics.csv")
    assert [row["step"] for row in logged] == [0, 1, 2, 3, 4]
    recorded = [row["recall"] for row in read_metrics(tmp_path / "metrics.csv")]  # 6 significant digits
    assert [row["recall"] for row in logged] == pytest.approx(recorded, rel=1e-5)


def wandb_env(tmp_path, **extra):
    """An environment with no W&B key anywhere (a fresh HOME, no WANDB_* variables) plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), **extra}


def test_wandb_without_an_api_key_says_what_to_do_before_reading_any_data(tmp_path):
    result = run_train(*RUN, "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}", env=wandb_env(tmp_path))
    one_sentence(result, "logger=wandb needs a W&B API key", "wandb login", "WANDB_API_KEY", "WANDB_MODE=offline",
                 "wandb sync")
    assert "classes (" not in result.stdout  # the data was never read


def test_wandb_with_a_key_but_no_way_to_the_server_does_not_hang(tmp_path):
    with socket.socket() as closed:  # a port nothing listens on: what an unreachable server looks like, at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = wandb_env(tmp_path, WANDB_API_KEY="0" * 40, WANDB_BASE_URL=f"http://127.0.0.1:{port}")
    started = time.monotonic()
    result = run_train(*RUN, "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}", env=env, timeout=120)
    one_sentence(result, f"cannot reach the W&B server http://127.0.0.1:{port}", "WANDB_MODE=offline")
    assert "classes (" not in result.stdout
    print(f"refused after {time.monotonic() - started:.1f} s")


def test_a_key_saved_by_wandb_login_counts(tmp_path, monkeypatch):
    from osal.records.run_logger import has_api_key
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "1" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(netrc))
    assert has_api_key("https://api.wandb.ai") and not has_api_key("https://wandb.example.org")


def test_a_second_command_on_the_same_run_directory_is_refused(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with exclusive_use(tmp_path, "src/train.py"):
        result = run_train(*RUN, f"hydra.run.dir={tmp_path}")
    one_sentence(result, f"{tmp_path} is in use by another command (src/train.py, process ", "wait for it")
    assert not (tmp_path / "metrics.csv").exists()


def test_a_run_directory_holding_someone_elses_records_is_refused_and_fresh_deletes_nothing_of_theirs(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,0.5\n")
    (tmp_path / "summary.json").write_text(json.dumps({"mine": True}))
    for extra in ([], ["fresh=true"]):
        result = run_train(*RUN, f"hydra.run.dir={tmp_path}", *extra)
        one_sentence(result, "metrics.csv, which is not a record of an osal run", "hydra.run.dir")
    assert (tmp_path / "metrics.csv").read_text() == "epoch,loss\n1,0.5\n"
    assert json.loads((tmp_path / "summary.json").read_text()) == {"mine": True}


def test_a_failing_job_of_a_multirun_ends_in_its_sentence_without_a_traceback(tmp_path):
    result = run_train("-m", *RUN, "al.rounds=1", "al.query_size=40,100000", f"hydra.sweep.dir={tmp_path}")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out, out[-3000:]
    ending = [line for line in result.stderr.strip().splitlines()[-4:] if line.strip()]
    assert ending[0].startswith("Error executing job with overrides:")  # Hydra's line, then the sentence alone
    assert ending[1] == ("al.query_size=100000 is larger than the unlabeled pool (1379 examples); lower "
                         "al.query_size to at most 1379")
    assert (tmp_path / "0_digits_mismatch0.4_lfosa_seed1" / "summary.json").exists()


@pytest.mark.parametrize("bad", ["theirs", "file"])
def test_report_refuses_an_out_it_cannot_use(tmp_path, bad):
    run_dir = tmp_path / "runs" / "one"
    assert run_train(*RUN, "al.rounds=1", f"hydra.run.dir={run_dir}").returncode == 0
    (tmp_path / "file").write_text("x")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("my notes\n")
    target = tmp_path / "file" if bad == "file" else theirs
    result = subprocess.run([sys.executable, "src/report.py", str(tmp_path / "runs"), "--out", str(target)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (theirs / "report.md").read_text() == "my notes\n"
