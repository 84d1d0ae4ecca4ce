"""Summarise every run under a directory: `python src/report.py <sweep or outputs dir>`.

Prints a markdown table of final recall, mean precision (over the queries) and final
accuracy, mean ± standard deviation over seeds, one row per dataset x mismatch x strategy.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

from osal.report.collect import find_runs  # noqa: E402
from osal.report.table import markdown, summarise  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="a directory holding run directories (metrics.csv + .hydra/config.yaml)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"error: {args.root} is not a directory; give a sweep or outputs directory", file=sys.stderr)
        return 2
    runs = find_runs(args.root)
    if not runs:
        print(f"error: no run (metrics.csv with .hydra/config.yaml) under {args.root}", file=sys.stderr)
        return 2
    print(markdown(summarise(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
