"""Find every run under a directory and read its config, its metrics and whether it finished.

A report folder may hold runs copied from others, so every file here is read as untrusted input: a run
whose files cannot be used (a metrics.csv edited or merged by hand, another program's Hydra folder) is left
out with one sentence naming the file and the fix, and two copies of one run count once.
"""

import os
from dataclasses import dataclass, field
from typing import Optional, Union

from osal.errors import OsalError, machine_problem
from osal.records.metrics import read_checked_metrics
from osal.records.run_files import is_run_record
from osal.records.settings import NAMED_IN_DIRECTORY, RESULT_NEUTRAL
from osal.records.summary import is_finished
from osal.report.duplicates import one_of_each
from osal.report.run_config import UnusableRun, command_line, run_config

# what every round of metrics.csv must give for the table, the figures and the comparison (precision too,
# in a round that queried): a run lacking one is left out rather than averaged with a hole in it
NEEDED = ("recall", "recall_incl_initial", "test_accuracy")


@dataclass
class Found:
    """The runs under a directory: those the report uses (`runs`, each run once), the run folders it cannot
    use (`left_out`, one sentence each) and the copies of one run (`duplicates`: (counted, [left out]))."""
    runs: list
    left_out: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)


def read_run(directory: Union[str, os.PathLike], fix: str) -> Optional[dict]:
    """One run directory (metrics.csv + .hydra/config.yaml) as a dict; None for a folder that is no osal run (a
    Lightning log's metrics.csv); UnusableRun, DamagedFileError or OSError for a run whose files cannot be used.

    `finished` is true when the run wrote summary.json, which it does at its end (its last round, or an
    early end when the pool ran out) and removes when a larger al.rounds continues it; `reached` is the
    last round it recorded.
    """
    config_path = os.path.join(directory, ".hydra", "config.yaml")
    metrics_path = os.path.join(directory, "metrics.csv")
    for path in (config_path, metrics_path):
        if os.path.exists(path) and not os.path.isfile(path):  # reading a pipe would wait forever
            raise UnusableRun(f"{path} is not a file (a folder, a pipe or a device); {fix}")
    if not os.path.exists(config_path):
        if is_run_record(metrics_path):
            raise UnusableRun(f"{directory} holds metrics.csv but no .hydra/config.yaml (copied without its hidden "
                              f"folder?); copy the run's .hydra folder along, or {fix}")
        return None
    fields, config = run_config(config_path, fix)
    rows = read_checked_metrics(metrics_path, fix)
    if not rows:
        raise UnusableRun(f"{metrics_path} holds no round; {fix}")
    hole = missing_value(rows)
    if hole:
        raise UnusableRun(f"{metrics_path} has no {hole}, where osal writes one, so the run is left out rather "
                          f"than averaged with a hole in it; {fix}")
    return {"dir": directory, "dataset": fields["dataset.name"], "mismatch": float(fields["mismatch"]),
            "strategy": fields["strategy.name"], "seed": fields["seed"], "rows": rows, "rounds": fields["al.rounds"],
            "reached": rows[-1]["round"], "finished": is_finished(directory), "config": config,
            "command_line": command_line(directory, fix)}


def missing_value(rows: list) -> Optional[str]:
    """'<column> in round <r>' for the first empty cell the report would average, or None."""
    for row in rows:
        for column in NEEDED + (("precision",) if row["queried"] else ()):
            if row[column] is None:
                return f"{column} in round {row['round']}"
    return None


def find_runs(root: Union[str, os.PathLike]) -> Found:
    """Every run directory below `root` that holds metrics.csv and .hydra/config.yaml, finished or not.

    Each run's `variant` names the command-line settings that tell it apart from the other runs found
    besides dataset, mismatch, strategy and seed (e.g. "openness=0.3" in the openness grid), so that runs
    of different settings are never averaged together.
    """
    fix = f"restore the file from where the run came, or move its run folder out of {root}"
    runs, left_out = [], []
    for directory, _, files in sorted(os.walk(root)):  # not into linked folders, so a link loop ends
        if "metrics.csv" not in files:
            continue
        try:
            run = read_run(directory, fix)
        except OsalError as error:
            left_out.append(str(error))
            continue
        except OSError as error:  # a dangling link, a folder named like a file, no permission
            problem = machine_problem(error)
            if problem is None:
                raise
            left_out.append(f"{problem}; {fix}")
            continue
        if run is not None:
            runs.append(run)
    runs, duplicates = one_of_each(runs)
    varying = sorted({key for run in runs for key in run["command_line"] if key not in SET_APART
                      and len({str(other["command_line"].get(key)) for other in runs}) > 1})
    for run in runs:
        given = run["command_line"]
        run["variant"] = " ".join(f"{key}={given[key]}" for key in varying if key in given)
    return Found(runs, left_out, duplicates)


# told apart by their own columns, or not changing what a run computes (al.rounds does change a run's end)
SET_APART = set(NAMED_IN_DIRECTORY) | (set(RESULT_NEUTRAL) - {"al.rounds"})
