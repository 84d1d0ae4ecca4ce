"""The final-round table: recall, mean precision and accuracy, mean and spread over seeds."""

from collections import defaultdict

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
    """One row per (dataset, mismatch, strategy): mean and standard deviation over seeds."""
    groups = defaultdict(list)
    for run in runs:
        groups[(run["dataset"], run["mismatch"], run["strategy"])].append(final_values(run))
    table = []
    for (dataset, mismatch, strategy), values in sorted(groups.items()):
        row = {"dataset": dataset, "mismatch": mismatch, "strategy": strategy, "seeds": len(values)}
        for key in COLUMNS:
            column = np.array([v[key] for v in values], dtype=float)
            row[key] = (float(np.mean(column)), float(np.std(column)))
        table.append(row)
    return table


def markdown(table: list) -> str:
    lines = ["| dataset | mismatch | strategy | seeds | " + " | ".join(COLUMNS.values()) + " |",
             "|---|---|---|---|" + "---|" * len(COLUMNS)]
    for row in table:
        cells = [f"{row[k][0]:.3f} ± {row[k][1]:.3f}" for k in COLUMNS]
        lines.append(f"| {row['dataset']} | {row['mismatch']:g} | {row['strategy']} | {row['seeds']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
