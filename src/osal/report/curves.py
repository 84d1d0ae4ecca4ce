"""Per-round curves of many runs: mean and spread over seeds, and the area under each curve."""

from collections import defaultdict

import numpy as np

METRICS = {"recall": "recall (Eq. 1)", "precision": "precision (Eq. 2)", "test_accuracy": "test accuracy",
           "recall_incl_initial": "recall, initial set included (the authors' code)"}


def curve(run: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(rounds, values) of one run, rounds without a value (precision of round 0) left out."""
    points = [(r["round"], r[metric]) for r in run["rows"] if r.get(metric) is not None]
    return np.array([p[0] for p in points]), np.array([p[1] for p in points], dtype=float)


def mean_curves(runs: list, metric: str) -> dict:
    """{(dataset, mismatch): {strategy: (rounds, mean, std, n_seeds)}} over the rounds all seeds share."""
    grouped = defaultdict(lambda: defaultdict(list))
    for run in runs:
        line = f"{run['strategy']} ({run['variant']})" if run.get("variant") else run["strategy"]
        grouped[(run["dataset"], run["mismatch"])][line].append(curve(run, metric))
    result = {}
    for panel, strategies in grouped.items():
        result[panel] = {}
        for strategy, curves in strategies.items():
            common = sorted(set.intersection(*(set(r.tolist()) for r, _ in curves)))
            values = np.array([[v[list(r).index(x)] for x in common] for r, v in curves])
            spread = values.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(len(common))  # sample sd, as the table
            result[panel][strategy] = (np.array(common), values.mean(axis=0), spread, len(curves))
    return result


def area_under_curve(rounds: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area divided by the span of rounds: the curve's average height (one value for one point)."""
    if len(rounds) == 0:
        return float("nan")
    if len(rounds) == 1:
        return float(values[0])
    return float(np.trapezoid(values, rounds) / (rounds[-1] - rounds[0]))
