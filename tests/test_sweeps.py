"""Multiruns: collision-free job directories, the sweep tally, the paper's grid config, and the report."""

import subprocess
import sys

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from osal.loop.progress import RoundProgressBar, format_duration
from osal.report.curves import area_under_curve

from conftest import CONF, ROOT, run_train

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

TINY = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none", "al.rounds=2", "trainer.max_epochs=1",
        "mismatch=0.4"]


def multirun(tmp_path, *overrides):
    return run_train("-m", *TINY, *overrides, f"hydra.sweep.dir={tmp_path}")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    result = multirun(root, "strategy=lfosa,random", "seed=1,2")
    return root, result


def test_every_job_has_its_own_directory_named_from_its_overrides(sweep):
    root, result = sweep
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert jobs == ["0_digits_mismatch0.4_lfosa_seed1", "1_digits_mismatch0.4_lfosa_seed2",
                    "2_digits_mismatch0.4_random_seed1", "3_digits_mismatch0.4_random_seed2"]
    for job in jobs:
        assert len((root / job / "metrics.csv").read_text().splitlines()) == 4  # header + rounds 0..2
    assert "4 jobs: 4 finished, 0 failed or unfinished" in result.stdout + result.stderr


def test_report_writes_readable_figures_and_the_table(sweep, tmp_path):
    root, _ = sweep
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "src/report.py", str(root), "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("recall.png", "precision.png", "accuracy.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    report = (out / "report.md").read_text()
    assert "| digits | 0.4 | lfosa | 2 |" in report and "| digits | 0.4 | random | 2 |" in report
    assert "recall AUC" in report and "4 jobs: 4 finished" in report


def test_report_on_a_directory_without_runs_is_one_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "src/report.py", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: no run")


def test_a_failed_job_is_counted_and_the_others_still_run(tmp_path):
    result = multirun(tmp_path, "al.query_size=40,100000")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "job 1 failed: al.query_size=100000" in out
    assert "2 jobs: 1 finished, 1 failed or unfinished (1_digits" in out
    assert (tmp_path / "0_digits_mismatch0.4_lfosa_seed1" / "summary.json").exists()


def test_paper_grid_is_one_named_experiment():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=paper"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.dataset == "cifar10,cifar100,tinyimagenet" and params.mismatch == "0.2,0.3,0.4"
    assert params.strategy == "random,uncertainty,certainty,coreset,bald,openmax,lfosa"
    assert params.seed == "1,2,3,4" and cfg.trainer.accelerator == "gpu"


def test_progress_bar_names_round_and_model_and_durations_read_plainly():
    bar = RoundProgressBar(3, 10, "detector")
    assert bar.label == "round 3/10 detector"
    assert format_duration(160.0) == "2:40" and format_duration(3725) == "1:02:05"
    assert format_duration(float("nan")) == "-"


def test_progress_bar_redraws_at_most_every_interval_and_at_epoch_end():
    bar = RoundProgressBar(1, 2, "classifier", min_interval=60.0)
    draws = [bar._should_update(n, 100) for n in range(1, 101)]
    assert draws[0] and draws[-1] and sum(draws) == 2  # the first batch, then the epoch's last


def test_area_under_curve_is_the_average_height():
    assert area_under_curve(np.array([0, 1, 2]), np.array([0.0, 1.0, 1.0])) == pytest.approx(0.75)
    assert area_under_curve(np.array([3]), np.array([0.4])) == pytest.approx(0.4)


def test_runs_that_differ_in_another_setting_get_rows_of_their_own(tmp_path):
    result = multirun(tmp_path / "sweep", "openness=0.0,0.5", "seed=1,2", "al.rounds=1")
    assert result.returncode == 0, result.stderr[-3000:]
    report = subprocess.run([sys.executable, "src/report.py", str(tmp_path / "sweep"), "--no-figures"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "| dataset | mismatch | setting | strategy | finished runs |" in report.stdout
    for openness in ("0.0", "0.5"):
        assert f"| digits | 0.4 | openness={openness} | lfosa | 2 |" in report.stdout


@pytest.mark.parametrize("experiment, knob, values", [("paper_openness", "openness", "0.0,0.1,0.2,0.3,0.4,0.5,0.6,"
                                                       "0.7,0.8,0.9"),
                                                      ("paper_batch_size", "al.query_size", "500,1000,1500,2000,2500")])
def test_the_papers_figure_7_and_8_grids_are_named_experiments(experiment, knob, values):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.dataset == "cifar100" and str(params.mismatch) == "0.2" and params[knob] == values


def test_the_published_curves_hold_the_authors_numbers():
    from osal.report.published import load, mean_sd, summary_values
    runs = load(ROOT / "docs" / "measurements" / "published")
    for strategy, recall, accuracy in (("lfosa", 0.671, 0.554), ("random", 0.328, 0.360)):  # reference-numbers.md
        seeds = [r for r in runs if (r["dataset"], r["mismatch"], r["strategy"]) == ("cifar100", 0.2, strategy)]
        values = [summary_values(r, 10) for r in seeds]
        assert len(seeds) == 4
        assert mean_sd([v["recall"] for v in values])[0] == pytest.approx(recall, abs=0.0006)
        assert mean_sd([v["accuracy"] for v in values])[0] == pytest.approx(accuracy, abs=0.0006)
    plot = [r for r in runs if (r["dataset"], r["mismatch"], r["strategy"]) == ("cifar10", 0.2, "lfosa")]
    assert len(plot) == 1 and summary_values(plot[0], 10)["recall"] == pytest.approx(0.96, abs=0.01)


def test_report_compares_with_published_curves_of_the_same_setting(sweep, tmp_path):
    root, _ = sweep
    published = tmp_path / "published"
    published.mkdir()
    with open(published / "made_up.csv", "w") as f:  # a published curve for digits at mismatch 0.4, two seeds
        f.write("dataset,mismatch,setting,strategy,seed,round,recall_incl_initial,precision,test_accuracy,source\n")
        for seed, shift in ((1, 0.0), (2, 0.1)):
            for r in range(3):
                precision = "" if r == 0 else 0.5 + shift
                recall = "" if r == 0 else 0.2 * r + shift
                f.write(f"digits,0.4,,lfosa,{seed},{r},{recall},{precision},{0.6 + shift},test\n")
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "src/report.py", str(root), "--out", str(out), "--published",
                             str(published)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    from osal.records.metrics import read_metrics
    ours = [read_metrics(root / f"{n}_digits_mismatch0.4_lfosa_seed{n + 1}" / "metrics.csv") for n in (0, 1)]
    recall = np.mean([rows[2]["recall_incl_initial"] for rows in ours])
    line = next(x for x in result.stdout.splitlines() if "recall (code variant) after 2 queries" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:4] == ["digits", "0.4", "-", "lfosa"]
    assert cells[5].startswith(f"{recall:.3f} ±") and cells[7] == "0.450 ± 0.071" and cells[8] == "2"
    assert cells[9] == f"{recall - 0.45:+.3f}"
    accuracy = next(x for x in result.stdout.splitlines() if "accuracy after 1 query " in x)
    assert "| 0.650 ± 0.071 |" in accuracy  # the authors' accuracy before the last query: round 1
    assert (out / "recall_code.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "random" not in "".join(x for x in result.stdout.splitlines() if "queries" in x)  # nothing published
