"""Summarise every run under a directory: `python src/report.py <sweep or outputs dir> [--out DIR]`.

Writes, into DIR (default: <dir>/report/): recall.png, precision.png, accuracy.png, recall_code.png (the
metric against round, mean ± sample sd over seeds, one panel per dataset x mismatch, one line
per strategy) and report.md (final recall, mean precision, final accuracy, the areas under the recall and
accuracy curves, the unknowns queried, the worst query's precision and the ceiling recall AUC of a strategy
of perfect precision on the same run, mean ± sample sd over seeds), and prints the table and
how many jobs finished or failed. Only finished runs enter the figures and the table (its
"finished runs" column says over how many each row averages); unfinished ones are listed
apart, at the round they reached. A run folder whose files cannot be used (a metrics.csv with a text cell,
an extra column, a missing round, an empty value the table needs or merge-conflict markers; another program's
Hydra folder) is left out and listed with the reason, and two copies of one run (the same config, settings
that change no result aside) count once. Where the LfOSA authors published numbers for the same dataset,
mismatch and strategy (docs/measurements/published/), they are drawn dotted on the figures and compared
in a second table (recall in their code's variant, rounds aligned as their code measures them).
"""

import argparse
import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

from osal.atomic import atomic_write_text  # noqa: E402
from osal.errors import OsalError, machine_problem  # noqa: E402
from osal.folders import check_writable, shown  # noqa: E402
from osal.records.sweep_status import describe, sweep_status  # noqa: E402
from osal.report import published  # noqa: E402
from osal.report.collect import find_runs  # noqa: E402
from osal.report.left_out import markdown_duplicates, markdown_left_out  # noqa: E402
from osal.report.table import markdown, markdown_unfinished, summarise, unfinished  # noqa: E402

FIGURES = {"recall": "recall.png", "precision": "precision.png", "test_accuracy": "accuracy.png",
           "recall_incl_initial": "recall_code.png"}
# the LfOSA authors' published curves (scripts/published_curves.py, scripts/digitize_published_plots.py)
PUBLISHED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "measurements",
                         "published")


REPORT_TITLE = "# Report of "


def check_out(out: str) -> Optional[str]:
    """Why `out` cannot take the report (a file, or a folder with a report.md this command did not write),
    or None: the report overwrites its own four files there and nothing else."""
    if os.path.exists(out) and not os.path.isdir(out):
        return f"--out {out} is a file; give --out a folder"
    report = os.path.join(out, "report.md")
    if os.path.exists(report):
        with open(report, encoding="utf-8", errors="replace") as f:
            if not f.readline().startswith(REPORT_TITLE):
                return f"{report} exists and is not a report this command wrote, so it is not overwritten; give " \
                       "--out another folder"
    try:
        check_writable(out, "the report folder", "give --out a folder you can write to")
    except OsalError as error:
        return str(error)
    return None


def no_runs(root: str, left_out: list) -> str:
    """Why there is nothing to report under `root`, in one sentence."""
    if not left_out:
        return f"no run (metrics.csv with .hydra/config.yaml) under {root}; give the sweep directory"
    folders = f"{len(left_out)} run folder{' was' if len(left_out) == 1 else 's were'} left out"
    return f"no run under {root} can be reported: {folders}, the first because {left_out[0]}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        return report(argv)
    except OsalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: report.md and each figure are written whole or not at all; run the same command again",
              file=sys.stderr)
        return 130
    except OSError as error:
        problem = machine_problem(error)
        if problem is None:
            raise
        print(f"error: {problem}; the runs were only read, nothing of them changed", file=sys.stderr)
        return 2


def report(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="a directory holding run directories (metrics.csv + .hydra/config.yaml)")
    parser.add_argument("--out", help="where the figures and report.md go (default: <root>/report)")
    parser.add_argument("--no-figures", action="store_true", help="only the table")
    parser.add_argument("--published", default=PUBLISHED, help="a folder of published curves (CSV) to compare "
                        "with, where datasets, mismatch and strategy match (default: docs/measurements/published)")
    parser.add_argument("--no-published", action="store_true", help="no comparison with published numbers")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"error: {args.root} is not a directory; give a sweep or outputs directory", file=sys.stderr)
        return 2
    found = find_runs(args.root)
    runs = found.runs
    if not runs:
        print(f"error: {no_runs(args.root, found.left_out)}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.root, "report")
    problem = check_out(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # read before anything is written: a published curve that cannot be read stops the report
    theirs = [] if args.no_published or not os.path.isdir(args.published) else published.load(args.published)
    os.makedirs(out, exist_ok=True)
    status = describe(sweep_status(args.root))
    finished = [run for run in runs if run["finished"]]
    table = markdown(summarise(runs)) if finished else "No run has finished yet: there are no final values."
    apart = markdown_unfinished(unfinished(runs))
    comparison = published.markdown(published.compare(runs, theirs))
    parts = (status, table, comparison, apart, markdown_left_out(found.left_out), markdown_duplicates(found.duplicates))
    text = "\n\n".join(part for part in parts if part)
    atomic_write_text(os.path.join(out, "report.md"), f"{REPORT_TITLE}{shown(args.root)}\n\n{text}\n")
    if not args.no_figures and finished:
        from osal.report.figures import draw  # matplotlib only when drawing
        for metric, name in FIGURES.items():
            draw(finished, metric, os.path.join(out, name), theirs)
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
