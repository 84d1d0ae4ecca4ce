"""The final-round table: recall, mean precision and accuracy, mean and spread over finished runs.

A run that stopped before its last round has no final values: it is left out of every mean and
listed apart, at the round it reached, so a killed job can never shift a row's numbers.
"""

from collections import defaultdict
from typing import Optional

import numpy as np

from osal.report.curves import area_under_curve, curve

# table columns: key of final_values -> header. What a user pays: the unknown examples sent to the annotator
# and the worst single query; the ceiling is the recall AUC a strategy of perfect precision reaches on the same
# run (the same pool, initial set and query sizes), so "closes X% of the gap to it" reads off the table. Avoidable
# unknowns are those a strategy of perfect precision would not have queried: once a budget exceeds the known
# examples in the pool, every strategy queries unknowns, and only the rest say how well it chose; for the same
# reason the worst query is the worst of those made while the pool still held a query's worth of known examples
COLUMNS = {"recall": "final recall", "precision": "mean precision", "accuracy": "final accuracy",
           "recall_auc": "recall AUC", "accuracy_auc": "accuracy AUC", "unknowns": "unknowns queried",
           "avoidable": "avoidable unknowns", "worst_precision": "worst query precision",
           "ceiling_auc": "ceiling recall AUC"}


def final_values(run: dict) -> dict:
    rows = run["rows"]
    precisions = [r["precision"] for r in rows if r["precision"] is not None]
    return {"recall": rows[-1]["recall"], "precision": float(np.mean(precisions)) if precisions else float("nan"),
            "accuracy": rows[-1]["test_accuracy"], "rounds": rows[-1]["round"],
            "recall_auc": area_under_curve(*curve(run, "recall")),
            "accuracy_auc": area_under_curve(*curve(run, "test_accuracy")),
            "unknowns": float(sum(r["queried"] - r["queried_known"] for r in rows)),
            "avoidable": avoidable_unknowns(rows),
            "worst_precision": worst_query_precision(rows),
            "ceiling_auc": area_under_curve(*ceiling_recall(rows))}


def known_in_pool(rows: list) -> float:
    """How many known examples the pool held before the first query (Eq. 1's denominator), from round 0: the
    initial set is recall_incl_initial of all known examples, the rest were in the pool."""
    first = rows[0]
    if not first["recall_incl_initial"]:
        return float("nan")
    every_known = round(first["n_labeled"] / first["recall_incl_initial"])
    return float(every_known - first["n_labeled"])


def avoidable_unknowns(rows: list) -> float:
    """The unknowns queried beyond those that no strategy could avoid (the queries left once the pool's known
    examples ran out): what the choice of examples cost."""
    queried = sum(r["queried"] for r in rows)
    unknowns = queried - sum(r["queried_known"] for r in rows)
    return float(unknowns - max(0.0, queried - known_in_pool(rows)))


def worst_query_precision(rows: list) -> float:
    """The lowest precision of a query made while the pool still held at least as many known examples as it
    asked for (so that all of it could have been known); NaN when no query was."""
    left, worst = known_in_pool(rows), float("nan")
    for row in rows:
        if row["queried"] and row["precision"] is not None and left >= row["queried"]:
            worst = row["precision"] if np.isnan(worst) else min(worst, row["precision"])
        left -= row["queried_known"]
    return worst


def ceiling_recall(rows: list) -> tuple[np.ndarray, np.ndarray]:
    """(rounds, recall) of a strategy whose every query is known while known examples are left: each query of
    the run's own size finds min(size, known left)."""
    known = known_in_pool(rows)
    found, values = 0.0, []
    for row in rows:
        found = min(known, found + row["queried"])
        values.append(found / known if known > 0 else float("nan"))
    return np.array([r["round"] for r in rows]), np.array(values)


def summarise(runs: list) -> list:
    """One row per (dataset, mismatch, strategy) with a finished run: mean and standard deviation over its
    finished runs (`runs` says how many); unfinished runs are not in it (see `unfinished`)."""
    groups = defaultdict(list)
    for run in runs:
        if run["finished"]:
            groups[(run["dataset"], run["mismatch"], run.get("variant", ""), run["strategy"])].append(final_values(run))
    table = []
    for (dataset, mismatch, variant, strategy), values in sorted(groups.items()):
        row = {"dataset": dataset, "mismatch": mismatch, "variant": variant, "strategy": strategy,
               "runs": len(values)}
        for key in COLUMNS:
            column = np.array([v[key] for v in values], dtype=float)
            # the sample standard deviation over seeds (ddof=1), as the comparison with the published numbers
            # uses; one run has none
            row[key] = (float(np.mean(column)), float(np.std(column, ddof=1)) if len(column) > 1 else None)
        table.append(row)
    return table


def unfinished(runs: list) -> list:
    """The runs left out of the table, each at the round it reached."""
    return sorted((r for r in runs if not r["finished"]),
                  key=lambda r: (r["dataset"], r["mismatch"], r.get("variant", ""), r["strategy"], r["seed"]))


def markdown(table: list) -> str:
    """The table; a `setting` column only when runs differ in more than dataset, mismatch and strategy."""
    settings = any(row["variant"] for row in table)
    lines = ["| dataset | mismatch | " + ("setting | " if settings else "") + "strategy | finished runs | "
             + " | ".join(COLUMNS.values()) + " |",
             "|---|---|" + ("---|" if settings else "") + "---|---|" + "---|" * len(COLUMNS)]
    for row in table:
        cells = [_cell(row[k], 0 if k in ("unknowns", "avoidable") else 3) for k in COLUMNS]
        setting = f"{row['variant']} | " if settings else ""
        lines.append(f"| {row['dataset']} | {row['mismatch']:g} | {setting}{row['strategy']} | {row['runs']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_unfinished(runs: list) -> str:
    """Unfinished runs apart from the table: where each stopped, its last recall and accuracy."""
    if not runs:
        return ""
    lines = [f"Unfinished runs, left out of the table and the figures ({len(runs)}):", "",
             "| dataset | mismatch | strategy | seed | round reached | recall there | accuracy there | directory |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        last = run["rows"][-1]
        strategy = f"{run['strategy']} ({run['variant']})" if run.get("variant") else run["strategy"]
        lines.append(f"| {run['dataset']} | {run['mismatch']:g} | {strategy} | {run['seed']} | "
                     f"{run['reached']} of {run['rounds']} | {_number(last['recall'])} | "
                     f"{_number(last['test_accuracy'])} | {run['dir']} |")
    return "\n".join(lines)


def _cell(value: tuple, digits: int) -> str:
    mean, spread = value
    return f"{mean:.{digits}f}" + ("" if spread is None else f" ± {spread:.{digits}f}")


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"
