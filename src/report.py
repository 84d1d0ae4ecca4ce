"""Summarise every run under a directory: `python src/report.py <sweep or outputs dir> [--out DIR]`.

Writes, into DIR (default: <dir>/report/): recall.png, precision.png, accuracy.png (the
metric against round, mean ± std over seeds, one panel per dataset x mismatch, one line
per strategy) and report.md (final recall, mean precision, final accuracy and the areas
under the recall and accuracy curves, mean ± std over seeds), and prints the table and
how many jobs finished or failed.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

from osal.atomic import atomic_write_text  # noqa: E402
from osal.report.collect import find_runs  # noqa: E402
from osal.report.sweep_status import describe, sweep_status  # noqa: E402
from osal.report.table import markdown, summarise  # noqa: E402

FIGURES = {"recall": "recall.png", "precision": "precision.png", "test_accuracy": "accuracy.png"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="a directory holding run directories (metrics.csv + .hydra/config.yaml)")
    parser.add_argument("--out", help="where the figures and report.md go (default: <root>/report)")
    parser.add_argument("--no-figures", action="store_true", help="only the table")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"error: {args.root} is not a directory; give a sweep or outputs directory", file=sys.stderr)
        return 2
    runs = find_runs(args.root)
    if not runs:
        print(f"error: no run (metrics.csv with .hydra/config.yaml) under {args.root}; give the sweep directory",
              file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.root, "report")
    os.makedirs(out, exist_ok=True)
    status = describe(sweep_status(args.root))
    table = markdown(summarise(runs))
    atomic_write_text(os.path.join(out, "report.md"), f"# Report of {os.path.abspath(args.root)}\n\n{status}\n\n"
                      f"{table}\n")
    if not args.no_figures:
        from osal.report.figures import draw  # matplotlib only when drawing
        for metric, name in FIGURES.items():
            draw(runs, metric, os.path.join(out, name))
    print(status)
    print(table)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
