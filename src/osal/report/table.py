"""The final-round table: recall, mean precision and accuracy, mean and spread over finished runs.

A run that stopped before its last round has no final values: it is left out of every mean and
listed apart, at the round it reached, so a killed job can never shift a row's numbers.
"""

from collections import defaultdict
from typing import Optional

import numpy as np

from osal.report.curves import area_under_curve, curve

# table columns: key of final_values -> header
COLUMNS = {"recall": "final recall", "precision": "mean precision", "accuracy": "final accuracy",
           "recall_auc": "recall AUC", "accuracy_auc": "accuracy AUC"}


def final_values(run: dict) -> dict:
    rows = run["rows"]
    precisions = [r["precision"] for r in rows if r["precision"] is not None]
    return {"recall": rows[-1]["recall"], "precision": float(np.mean(precisions)) if precisions else float("nan"),
            "accuracy": rows[-1]["test_accuracy"], "rounds": rows[-1]["round"],
            "recall_auc": area_under_curve(*curve(run, "recall")),
            "accuracy_auc": area_under_curve(*curve(run, "test_accuracy"))}


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
        cells = [f"{row[k][0]:.3f}" + ("" if row[k][1] is None else f" ± {row[k][1]:.3f}") for k in COLUMNS]
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


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"
