"""The precision of each query, run by run, and its mean per strategy: where a strategy loses, query by query.

    python scripts/query_precisions.py DIR [--queries N]

DIR holds run directories (a sweep, a campaign's runs/, docs/measurements/design_set/...). Prints markdown: one
row per run (dataset, mismatch, strategy, seed, the precision of its first N queries), then per dataset and
strategy the mean over runs of each query's precision and of the worst of the N.
"""

import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from osal.report.collect import find_runs  # noqa: E402


def precisions(run: dict, queries: int) -> list:
    return [row["precision"] for row in run["rows"][1:queries + 1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--queries", type=int, default=2, help="how many queries from the first (default 2)")
    args = parser.parse_args()
    if not os.path.isdir(args.root):
        sys.exit(f"error: {args.root} is not a directory; give the folder that holds the run directories")
    found = find_runs(args.root)
    runs = [r for r in found.runs if len(r["rows"]) > args.queries]
    if not runs:
        sys.exit(f"error: no run under {args.root} has made {args.queries} queries; give a folder of runs, or "
                 "fewer --queries")
    columns = " | ".join(f"query {q + 1}" for q in range(args.queries))
    print(f"| dataset | mismatch | strategy | seed | {columns} |")
    print("|---|---|---|---|" + "---|" * args.queries)
    means = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r["dataset"], r["mismatch"], r["seed"], r["strategy"])):
        values = precisions(run, args.queries)
        means[(run["dataset"], run["strategy"])].append(values)
        print(f"| {run['dataset']} | {run['mismatch']:g} | {run['strategy']} | {run['seed']} | "
              + " | ".join(f"{v:.3f}" for v in values) + " |")
    print()
    print(f"| dataset | strategy | runs | {columns} | worst query |")
    print("|---|---|---|" + "---|" * (args.queries + 1))
    for (dataset, strategy), rows in sorted(means.items()):
        mean = [sum(r[q] for r in rows) / len(rows) for q in range(args.queries)]
        worst = sum(min(r) for r in rows) / len(rows)
        print(f"| {dataset} | {strategy} | {len(rows)} | " + " | ".join(f"{v:.3f}" for v in mean)
              + f" | {worst:.3f} |")
    for sentence in found.left_out:
        print(f"left out: {sentence}", file=sys.stderr)


if __name__ == "__main__":
    main()
