"""The report never mixes a run that stopped early into the numbers of finished ones."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from osal.records.metrics import read_metrics
from osal.records.run_state import load_state

from conftest import ROOT, run_train

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

RUN = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none", "mismatch=0.4", "al.rounds=2",
       "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def sweep_with_a_killed_job(tmp_path_factory):
    """Two finished LfOSA runs (seeds 1, 2) and a third (seed 3) killed with SIGKILL after its round 0."""
    root = tmp_path_factory.mktemp("sweep")
    assert run_train("-m", *RUN, "seed=1,2", f"hydra.sweep.dir={root}").returncode == 0
    killed = root / "2_digits_mismatch0.4_lfosa_seed3"
    # the same settings as the others (another setting would give it a row of its own): killed the moment
    # round 0 is saved, well before round 1's two fits can end
    process = subprocess.Popen([sys.executable, "src/train.py", *RUN, "seed=3", f"hydra.run.dir={killed}"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not (killed / "state.npz").exists():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert load_state(killed).last_round == 0, "the job was not killed between round 0 and its end"
    return root


def report(root, tmp_path):
    result = subprocess.run([sys.executable, "src/report.py", str(root), "--out", str(tmp_path / "report"),
                             "--no-figures"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return (tmp_path / "report" / "report.md").read_text()


def test_a_killed_run_is_left_out_of_the_row_and_listed_apart(sweep_with_a_killed_job, tmp_path):
    root = sweep_with_a_killed_job
    text = report(root, tmp_path)
    finished = [read_metrics(root / f"{n}_digits_mismatch0.4_lfosa_seed{n + 1}" / "metrics.csv")[-1]
                for n in (0, 1)]
    recall = np.mean([row["recall"] for row in finished])
    accuracy = np.mean([row["test_accuracy"] for row in finished])
    row = next(line for line in text.splitlines() if line.startswith("| digits | 0.4 | lfosa |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "2"  # finished runs averaged
    assert cells[4].startswith(f"{recall:.3f} ±") and cells[6].startswith(f"{accuracy:.3f} ±")
    assert "nan" not in row
    assert "| finished runs |" in text
    assert "Unfinished runs, left out of the table and the figures (1):" in text
    assert "| digits | 0.4 | lfosa | 3 | 0 of 2 |" in text
    assert "3 jobs: 2 finished, 1 failed or unfinished (2_digits_mismatch0.4_lfosa_seed3)" in text


def test_the_figures_are_drawn_from_the_finished_runs_only(sweep_with_a_killed_job):
    from osal.report.collect import find_runs
    from osal.report.curves import mean_curves
    runs = [run for run in find_runs(sweep_with_a_killed_job).runs if run["finished"]]
    rounds, _, _, n = mean_curves(runs, "recall")[("digits", 0.4)]["lfosa"]
    assert n == 2 and rounds.tolist() == [0, 1, 2]  # the killed run would cut the curve to round 0


def test_a_finished_run_continued_to_more_rounds_is_unfinished_until_its_new_end(tmp_path):
    from osal.loop.experiment import Experiment
    from osal.records.summary import is_finished

    from conftest import FAST, compose_config
    Experiment(compose_config(FAST + ["mismatch=0.4", "al.rounds=1", "trainer.max_epochs=1"]), tmp_path).run()
    assert is_finished(tmp_path)
    longer = Experiment(compose_config(FAST + ["mismatch=0.4", "al.rounds=2", "trainer.max_epochs=1"]), tmp_path)
    from osal.records.run_state import load_state
    assert longer.finished_run(load_state(tmp_path)) is None
    assert not is_finished(tmp_path)  # while it continues, it counts as unfinished
    longer.run()
    assert is_finished(tmp_path)
