"""The LfOSA authors' published curves beside ours: read from CSV, overlaid on the figures, compared in a table.

The CSVs (docs/measurements/published/, written by scripts/published_curves.py and
scripts/digitize_published_plots.py from github.com/ningkp/LfOSA) are already on osal's rounds
(round r = after r queries): the authors measure accuracy before each query, so their last accuracy
is after 9 queries, and their recall counts the initial set (`recall_incl_initial`). The table
compares like with like: recall (code variant) after the last query, mean precision over the
queries, and accuracy after 9 queries; spreads are sample standard deviations (ddof=1).
"""

import csv
import glob
import io
import math
import os
from collections import defaultdict
from typing import Optional, Union

import numpy as np

from osal.stored import DamagedFileError, read_text

METRICS = ("recall_incl_initial", "precision", "test_accuracy")
COLUMNS = ("dataset", "mismatch", "strategy", "seed", "round", "source", *METRICS)
FIX = "correct it, or give --no-published"


def load(folder: Union[str, os.PathLike]) -> list:
    """Runs (as find_runs gives them, `published` set) from every CSV in `folder`; a row without a seed is
    the mean of the authors' seeds (read off a plot). DamagedFileError names a file that cannot be read so."""
    rows = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(str(folder), "*.csv"))):
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))  # LFS pointers, conflict markers refused
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DamagedFileError(f"{path} lacks the column {missing[0]}; {FIX}")
        for row in reader:
            if None in row or None in row.values():  # DictReader's marks of a row longer or shorter than the header
                raise DamagedFileError(f"{path} line {reader.line_num} has another number of cells than its header; "
                                       f"{FIX}")
            values = {c: _value(path, reader.line_num, c, row[c]) for c in ("mismatch", "round", *METRICS)}
            key = (row["dataset"], values["mismatch"], row.get("setting") or "", row["strategy"],
                   row["seed"] or "mean", row["source"])
            rows[key].append({"round": values["round"], **{m: values[m] for m in METRICS}})
    return [{"dataset": d, "mismatch": m, "variant": v, "strategy": s, "seed": seed, "source": source,
             "rows": sorted(r, key=lambda x: x["round"]), "finished": True, "published": True}
            for (d, m, v, s, seed, source), r in sorted(rows.items())]


def _value(path: str, line: int, column: str, cell: Optional[str]) -> Optional[Union[int, float]]:
    """A number of a published curve (an empty cell: none, but a round always has one)."""
    if not cell and column not in ("mismatch", "round"):
        return None
    try:
        value = int(cell) if column == "round" else float(cell)
    except (TypeError, ValueError):  # TypeError: a row shorter than the header
        kind = "a whole number" if column == "round" else "a number"
        raise DamagedFileError(f"{path} line {line}: {column} {cell!r} is not {kind}; {FIX}") from None
    if not math.isfinite(value):
        raise DamagedFileError(f"{path} line {line}: {column} {cell!r} is not a finite number; {FIX}")
    return value


def at_round(run: dict, metric: str, round_index: int) -> Optional[float]:
    return next((r[metric] for r in run["rows"] if r["round"] == round_index and r.get(metric) is not None), None)


def summary_values(run: dict, rounds: int) -> dict:
    """The compared numbers of one run: recall (code variant) after `rounds` queries, mean precision over
    queries 1..rounds, accuracy after rounds - 1 queries."""
    precisions = [r["precision"] for r in run["rows"] if 1 <= r["round"] <= rounds and r.get("precision") is not None]
    return {"recall": at_round(run, "recall_incl_initial", rounds),
            "precision": float(np.mean(precisions)) if len(precisions) == rounds else None,
            "accuracy": at_round(run, "test_accuracy", rounds - 1)}


def mean_sd(values: list) -> tuple[Optional[float], Optional[float]]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def compare(ours: list, published: list) -> list:
    """Rows (group, metric, ours mean/sd/n, published mean/sd/n) for every group both have."""
    def group(run: dict) -> tuple[str, float, str, str]:
        return run["dataset"], run["mismatch"], run.get("variant", ""), run["strategy"]

    theirs = defaultdict(list)
    for run in published:
        theirs[group(run)].append(run)
    mine = defaultdict(list)
    for run in ours:
        if run["finished"] and group(run) in theirs:
            mine[group(run)].append(run)
    table = []
    for key in sorted(mine):
        rounds = max(r["round"] for run in theirs[key] for r in run["rows"])
        our_values = [summary_values(run, rounds) for run in mine[key]]
        their_values = [summary_values(run, rounds) for run in theirs[key]]
        plot = all(run["seed"] == "mean" for run in theirs[key])
        for metric in ("recall", "precision", "accuracy"):
            a, a_sd = mean_sd([v[metric] for v in our_values])
            b, b_sd = mean_sd([v[metric] for v in their_values])
            if a is not None and b is not None:
                table.append({"group": key, "metric": metric, "rounds": rounds, "ours": (a, a_sd, len(our_values)),
                              "published": (b, b_sd, "plot" if plot else len(their_values))})
    return table


LABELS = {"recall": "recall (code variant) after {r} {rs}", "precision": "mean precision, queries 1-{r}",
          "accuracy": "accuracy after {q} {qs}"}


def markdown(table: list) -> str:
    """Ours against the published numbers; empty when no group is in both."""
    if not table:
        return ""
    lines = ["Against the LfOSA authors' published numbers (mean ± sample sd over seeds; \"plot\": the mean read "
             "off their figure):", "",
             "| dataset | mismatch | setting | strategy | metric | ours | runs | published | seeds | difference |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        dataset, mismatch, setting, strategy = row["group"]
        (a, a_sd, n), (b, b_sd, m) = row["ours"], row["published"]
        r, q = row["rounds"], row["rounds"] - 1
        label = LABELS[row["metric"]].format(r=r, q=q, rs="query" if r == 1 else "queries",
                                             qs="query" if q == 1 else "queries")
        lines.append(f"| {dataset} | {mismatch:g} | {setting or '-'} | {strategy} | {label} | {_pm(a, a_sd)} | {n} | "
                     f"{_pm(b, b_sd)} | {m} | {a - b:+.3f} |")
    return "\n".join(lines)


def _pm(mean: float, sd: Optional[float]) -> str:
    return f"{mean:.3f}" + ("" if sd is None or math.isnan(sd) else f" ± {sd:.3f}")
