"""scripts/query_precisions.py on the committed design-set runs: every run's queries, and means that are those of
the runs' metrics.csv."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "measurements" / "design_set" / "first_queries"


def script(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "query_precisions.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_every_run_and_the_mean_of_each_query_per_strategy():
    done = script(str(RUNS))
    assert done.returncode == 0, done.stderr
    per_run, means = [t.strip().splitlines()[2:] for t in done.stdout.split("\n\n")]
    directories = [d for d in RUNS.iterdir() if (d / "metrics.csv").exists()]
    assert len(per_run) == len(directories)
    by_strategy = {}
    for directory in directories:
        with open(directory / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        strategy = directory.name.split("_", 3)[3].rsplit("_seed", 1)[0]
        by_strategy.setdefault(strategy, []).append([float(rows[q]["precision"]) for q in (1, 2)])
    for line in means:
        cells = [c.strip() for c in line.strip("|").split("|")]
        runs = by_strategy[cells[1]]
        assert int(cells[2]) == len(runs)
        for q in (0, 1):
            assert cells[3 + q] == f"{sum(r[q] for r in runs) / len(runs):.3f}"
        assert cells[5] == f"{sum(min(r) for r in runs) / len(runs):.3f}"


def test_a_folder_without_runs_is_one_sentence(tmp_path):
    done = script(str(tmp_path))
    assert done.returncode != 0 and "no run under" in done.stderr and "Traceback" not in done.stderr
    missing = script(str(tmp_path / "nothing"))
    assert missing.returncode != 0 and "is not a directory" in missing.stderr
