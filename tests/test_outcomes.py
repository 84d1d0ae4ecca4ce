"""Outcomes of real runs on the embedded digits data: learning happens, LfOSA finds more knowns than Random,
report.md says what the runs' metrics.csv files hold, and fresh=true leaves no record of the run it replaces.

Every run goes through the real Hydra compose, the real Lightning Trainer and real files; every expected
number is computed here from the runs' own records (read with the csv module, not with osal's readers).
"""

import csv
import json
import re
import statistics
import subprocess
import sys
import time

import pytest
import yaml

from osal.loop.experiment import Experiment
from osal.records.run_state import load_state

from conftest import ROOT, compose_config, run_train

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

# digits' own protocol (queries of 40, 15 epochs per fit), 4 of the 10 classes known, 2 queries per run
SWEEP = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none", "mismatch=0.4", "al.rounds=2"]
SEEDS = (1, 2, 3)


# -- reading the runs' records independently of osal ------------------------------------------------

def read_rows(path):
    """A metrics.csv as a list of {column: float or None}, rounds (Lightning's copy: steps) as ints."""
    with open(path, newline="") as f:
        rows = [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]
    for row in rows:
        for key in {"round", "step"} & set(row):
            row[key] = int(row[key])
    return rows


def read_sweep(root):
    """Every job directory of a sweep: its config (.hydra/config.yaml), its rows and whether it finished."""
    runs = []
    for job in sorted(p for p in root.iterdir() if (p / "metrics.csv").exists()):
        cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        runs.append({"dir": job, "dataset": cfg["dataset"]["name"], "mismatch": float(cfg["mismatch"]),
                     "strategy": cfg["strategy"]["name"], "seed": int(cfg["seed"]),
                     "num_classes": int(cfg["dataset"]["num_classes"]), "rounds": int(cfg["al"]["rounds"]),
                     "rows": read_rows(job / "metrics.csv"), "finished": (job / "summary.json").exists()})
    return runs


def mean_precision(rows):
    values = [r["precision"] for r in rows if r["precision"] is not None]
    return sum(values) / len(values)


def average_height(rows, column):
    """Trapezoid area under (round, column) over the rounds that have a value, divided by their span."""
    points = [(r["round"], r[column]) for r in rows if r[column] is not None]
    if len(points) == 1:
        return points[0][1]
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))
    return area / (points[-1][0] - points[0][0])


# what each column of report.md's table means, computed from one run's rows
EXPECTED = {
    "final recall": lambda rows: rows[-1]["recall"],
    "mean precision": mean_precision,
    "final accuracy": lambda rows: rows[-1]["test_accuracy"],
    "recall AUC": lambda rows: average_height(rows, "recall"),
    "accuracy AUC": lambda rows: average_height(rows, "test_accuracy"),
    "unknowns queried": lambda rows: sum(r["queried"] - r["queried_known"] for r in rows),
    "avoidable unknowns": lambda rows: avoidable(rows),
    "worst query precision": lambda rows: worst_possible_query(rows),
    "ceiling recall AUC": lambda rows: average_height(perfect_precision(rows), "recall"),
}
DECIMALS = {"unknowns queried": 0, "avoidable unknowns": 0}  # counts; every other column has 3


def worst_possible_query(rows):
    """The lowest precision among the queries that asked for no more than the known examples left in the pool."""
    left = round(sum(r["queried_known"] for r in rows) / rows[-1]["recall"])
    precisions = []
    for r in rows:
        if r["queried"] and left >= r["queried"]:
            precisions.append(r["queried_known"] / r["queried"])
        left -= r["queried_known"]
    return min(precisions)


def avoidable(rows):
    """Unknowns queried less those no strategy could avoid: the queries beyond the pool's known examples (Eq. 1:
    known queried / recall)."""
    queried = sum(r["queried"] for r in rows)
    found = sum(r["queried_known"] for r in rows)
    in_pool = round(found / rows[-1]["recall"])
    return (queried - found) - max(0, queried - in_pool)


def perfect_precision(rows):
    """The rows of a strategy whose every query is known while known examples are left, on the same run: the
    pool's known examples from Eq. 1 at the end (known queried / recall), each query finding min(size, left)."""
    in_pool = sum(r["queried_known"] for r in rows) / rows[-1]["recall"]
    found, perfect = 0, []
    for r in rows:
        found = min(in_pool, found + r["queried"])
        perfect.append({"round": r["round"], "recall": found / in_pool})
    return perfect


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One real multirun: LfOSA and Random, seeds 1-3, on digits at mismatch 0.4, 2 queries of 40 each."""
    root = tmp_path_factory.mktemp("outcomes_sweep")
    result = run_train("-m", *SWEEP, "strategy=lfosa,random", "seed=" + ",".join(map(str, SEEDS)),
                       f"hydra.sweep.dir={root}", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = read_sweep(root)
    assert sorted((r["strategy"], r["seed"]) for r in runs) == [(s, n) for s in ("lfosa", "random") for n in SEEDS]
    return root, runs, result.stdout + result.stderr


# -- 1. the runs learn, and LfOSA's queries hit known classes more often than Random's -----------------

def test_digits_runs_learn_and_lfosa_queries_more_knowns_than_random(sweep):
    """Measured on the 2-core CPU in exactly this setting (seeds 1, 2, 3): LfOSA's mean query precision
    1.000, 1.000, 0.963, Random's 0.288, 0.413, 0.413 (means 0.988 against 0.371; the 4 known classes are
    about 40% of the pool, and one Random run's precision over 80 queries spreads by about 0.055). With a
    third query: LfOSA 1.000, 1.000, 0.975, Random 0.325, 0.425, 0.367. Final test accuracy 0.965, 0.986,
    0.993 (LfOSA) and 1.000, 0.993, 1.000 (Random) against chance 1/4. Asserted: accuracy above chance in
    every run, LfOSA above Random seed by seed, and a gap of at least 0.3 between the means over seeds."""
    _, runs, output = sweep
    for run in runs:
        assert run["finished"] and [r["round"] for r in run["rows"]] == list(range(run["rounds"] + 1))
        known = round(run["mismatch"] * run["num_classes"])  # the first K = round(mismatch x C) classes
        assert f"{run['num_classes']} classes ({known} known)" in output
        chance = 1 / known
        final = run["rows"][-1]["test_accuracy"]
        assert final > chance, f"{run['dir'].name}: final accuracy {final} is not above chance {chance}"
    precision = {(r["strategy"], r["seed"]): mean_precision(r["rows"]) for r in runs}
    for seed in SEEDS:
        assert precision["lfosa", seed] > precision["random", seed], precision
    lfosa = statistics.mean(precision["lfosa", s] for s in SEEDS)
    random = statistics.mean(precision["random", s] for s in SEEDS)
    assert lfosa - random >= 0.3, precision


# -- 2. report.md's table is what the runs' metrics.csv files say ----------------------------------------

@pytest.fixture(scope="module")
def report_table(sweep, tmp_path_factory):
    """src/report.py on the sweep; report.md's table as (header, rows of cells)."""
    root, _, _ = sweep
    out = tmp_path_factory.mktemp("outcomes_report")
    result = subprocess.run([sys.executable, "src/report.py", str(root), "--out", str(out), "--no-figures",
                             "--no-published"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "report.md").read_text()
    assert f"{len(SEEDS) * 2} jobs: {len(SEEDS) * 2} finished, 0 failed or unfinished" in text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| dataset | mismatch |"))
    header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    assert re.fullmatch(r"\|(---\|)+", lines[start + 1].strip())
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return header, rows


def groups(runs):
    """{(dataset, mismatch, strategy): [rows of each finished run]}."""
    grouped = {}
    for run in runs:
        if run["finished"]:
            grouped.setdefault((run["dataset"], run["mismatch"], run["strategy"]), []).append(run["rows"])
    return grouped


def split_cell(cell, column):
    digits = DECIMALS.get(column, 3)
    number = rf"\d+\.\d{{{digits}}}" if digits else r"\d+"
    match = re.fullmatch(rf"(-?{number}) ± ({number})", cell)
    assert match, f"not 'mean ± sd' with {digits} decimals: {cell!r}"
    return match.group(1), match.group(2)


def test_report_rows_and_means_are_those_of_the_runs_metrics(sweep, report_table):
    _, runs, _ = sweep
    header, rows = report_table
    numeric = header[header.index("finished runs") + 1:]
    unchecked = set(numeric) - set(EXPECTED)
    assert not unchecked, f"report.md has columns this test does not know how to compute: {unchecked}"
    assert set(EXPECTED) <= set(numeric)
    expected_groups = groups(runs)
    shown = {(r["dataset"], float(r["mismatch"]), r["strategy"]): r for r in rows}
    assert sorted(shown) == sorted(expected_groups)
    wrong = []
    for key, run_rows in expected_groups.items():
        row = shown[key]
        assert row["mismatch"] == f"{key[1]:g}"
        assert int(row["finished runs"]) == len(run_rows) == len(SEEDS)
        for column in numeric:
            mean = statistics.mean(EXPECTED[column](r) for r in run_rows)
            if split_cell(row[column], column)[0] != f"{mean:.{DECIMALS.get(column, 3)}f}":
                wrong.append(f"{key[2]} {column}: report.md {row[column]}, mean of the runs {mean:.5f}")
    assert not wrong, "\n".join(wrong)


def test_report_spreads_are_sample_standard_deviations_of_the_runs(sweep, report_table):
    """The ± in report.md's table is the sample standard deviation over seeds (ddof=1), as the report's own
    comparison with the published numbers says of its spreads."""
    _, runs, _ = sweep
    header, rows = report_table
    numeric = header[header.index("finished runs") + 1:]
    shown = {(r["dataset"], float(r["mismatch"]), r["strategy"]): r for r in rows}
    wrong = []
    for key, run_rows in groups(runs).items():
        for column in numeric:
            values = [EXPECTED[column](r) for r in run_rows]
            sd = statistics.stdev(values)  # ddof=1
            if split_cell(shown[key][column], column)[1] != f"{sd:.{DECIMALS.get(column, 3)}f}":
                population = statistics.pstdev(values)
                wrong.append(f"{key[2]} {column}: report.md {shown[key][column]}, sample sd of the runs "
                             f"{sd:.5f} (population sd, ddof=0: {population:.5f})")
    # seeds must disagree somewhere, or ddof would not show
    assert any(statistics.stdev([EXPECTED[c](r) for r in g]) > 0.002 for g in groups(runs).values() for c in numeric)
    assert not wrong, "\n".join(wrong)


# -- 3. fresh=true removes the old run's records, pool_round files of its later rounds included -------

SHORT = ["trainer=cpu", "trainer.enable_progress_bar=false", "trainer.max_epochs=1", "mismatch=0.4"]


def pool_rounds(directory):
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := re.fullmatch(r"pool_round_(\d+)\.npz", p.name)))


@pytest.mark.parametrize("old", ["finished", "partial"])
def test_fresh_rerun_with_fewer_rounds_removes_the_old_rounds_records(old, tmp_path):
    run_dir = tmp_path / "run"
    # the old run: 3 queries, finished; "partial": then continued to al.rounds=5 with a deadline already
    # past, so it stops before round 4 and is left unfinished (no summary.json), rounds 0..3 kept
    Experiment(compose_config(SHORT + ["al.rounds=3"]), run_dir).run()
    if old == "partial":
        summary = Experiment(compose_config(SHORT + ["al.rounds=5", f"deadline={int(time.time()) - 60}"]),
                             run_dir).run()
        assert "stopped" in summary and not (run_dir / "summary.json").exists()
    else:
        assert json.loads((run_dir / "summary.json").read_text())["rounds"] == 3
    assert pool_rounds(run_dir) == [0, 1, 2, 3]
    assert [r["round"] for r in read_rows(run_dir / "metrics.csv")] == [0, 1, 2, 3]
    assert [r["step"] for r in read_rows(run_dir / "lightning_logs" / "metrics.csv")] == [0, 1, 2, 3]

    result = run_train(*SHORT, "al.rounds=1", "fresh=true", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "resuming" not in out and "already finished" not in out  # it ran from scratch
    assert pool_rounds(run_dir) == [0, 1], sorted(p.name for p in run_dir.iterdir())
    rows = read_rows(run_dir / "metrics.csv")
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[1]["queried"] == 40 and rows[0]["n_labeled"] + rows[1]["queried_known"] == rows[1]["n_labeled"]
    assert load_state(run_dir).last_round == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds"] == 1 and summary["final"]["round"] == 1
    # the Lightning CSV logger's copy holds the new rounds only, too
    assert [r["step"] for r in read_rows(run_dir / "lightning_logs" / "metrics.csv")] == [0, 1]
    # and the same command again finds it finished: nothing of the old rounds makes it resume or refuse
    again = run_train(*SHORT, "al.rounds=1", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr, again.stderr[-3000:]
    assert pool_rounds(run_dir) == [0, 1]

