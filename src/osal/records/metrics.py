"""The run's records: metrics.csv (rewritten atomically each round) and the printed per-round table."""

import csv
import io
import math
import os
from typing import Optional, Union

from osal.atomic import atomic_write_text
from osal.stored import DamagedFileError, read_text

# what to do about a metrics.csv that does not read back as osal wrote it
METRICS_FIX = "restore it from where the run directory came (osal writes numbers only), or move it away"

COLUMNS = ["round", "n_labeled", "n_invalid", "n_unlabeled", "queried", "queried_known", "precision", "recall",
           "recall_incl_initial", "test_accuracy", "test_macro_precision", "test_macro_recall", "test_macro_f1",
           "query_seconds", "inference_seconds", "selection_seconds", "fit_seconds"]

# the compact table printed as the run goes: (column, header, format)
TABLE = [("round", "round", "{:>5d}"), ("n_labeled", "labeled", "{:>8d}"), ("n_invalid", "invalid", "{:>8d}"),
         ("n_unlabeled", "unlabeled", "{:>9d}"), ("queried", "queried", "{:>7d}"), ("queried_known", "known", "{:>6d}"),
         ("precision", "prec", "{:>6.3f}"), ("recall", "recall", "{:>6.3f}"), ("test_accuracy", "acc", "{:>6.3f}"),
         ("fit_seconds", "fit_s", "{:>7.1f}"), ("query_seconds", "query_s", "{:>7.1f}")]


class MetricsTable:
    """The rows of metrics.csv, one per round, kept in memory and flushed whole after each round (`path` None:
    in memory alone, as in a DDP process that is not the main one)."""

    def __init__(self, path: Optional[Union[str, os.PathLike]]):
        self.path = path
        self.rows = []

    def append(self, row: dict) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"not metrics.csv columns: {sorted(unknown)}")
        self.rows.append({c: row.get(c) for c in COLUMNS})
        self._flush()

    def restore(self, last_round: int) -> None:
        """Take back the rows of rounds 0..last_round from the file (a crash may have left a later one)."""
        rows = read_metrics(self.path) if os.path.exists(self.path) else []
        self.rows = [{c: row.get(c) for c in COLUMNS} for row in rows
                     if row.get("round") is not None and row["round"] <= last_round]
        if [r["round"] for r in self.rows] != list(range(last_round + 1)):
            raise DamagedFileError(f"{self.path} lacks rows of rounds 0..{last_round}, which state.npz says were "
                                   "completed; restore it from where the run directory came, or move state.npz "
                                   "away to start the run again")
        self._flush()

    def _flush(self) -> None:
        if self.path is None:
            return
        lines = [",".join(COLUMNS)]
        for row in self.rows:
            lines.append(",".join(_csv_value(row[c]) for c in COLUMNS))
        atomic_write_text(self.path, "\n".join(lines) + "\n")


def _csv_value(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_metrics(path: Union[str, os.PathLike]) -> list:
    """metrics.csv back as dicts of numbers (empty cells become None); DamagedFileError naming the file, the line
    and what to do when it does not read back (osal.stored.read_text) or a cell is not a number."""
    rows = []
    # line 1 is the header; a row's cells beyond the header's come under None, missing ones are None
    for line, row in enumerate(csv.DictReader(io.StringIO(read_text(path), newline="")), start=2):
        if None in row or None in row.values():
            raise DamagedFileError(f"{path} line {line} has another number of cells than its header; {METRICS_FIX}")
        rows.append({k: _parse(v, path, line, k) for k, v in row.items()})
    return rows


def _parse(text: str, path: Union[str, os.PathLike], line: int, column: str,
           fix: str = METRICS_FIX) -> Optional[float]:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise DamagedFileError(f"{path} line {line} holds {text[:40]!r} as {column}, where a number belongs; "
                               f"{fix}") from None


def read_checked_metrics(path: Union[str, os.PathLike], fix: str) -> list:
    """metrics.csv back as read_metrics gives it, from a file that may come from others (copied, merged, edited).

    Raises DamagedFileError naming the file, what osal would never have written there and `fix` (what to do),
    unless the file holds osal's columns, in every cell a finite number or nothing, and the rounds 0, 1, 2, ...
    in order; an LFS pointer or merge-conflict markers get osal.stored's sentences.
    """
    text = read_text(path)
    if not text.strip():
        raise DamagedFileError(f"{path} is empty; {fix}")
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
        _check_header(path, header, fix)
        rows = [_checked_row(path, reader.line_num, header, cells, fix) for cells in reader if cells]
    except csv.Error as error:
        raise DamagedFileError(f"{path} is not a CSV file osal wrote (line {reader.line_num}: {error}); "
                               f"{fix}") from None
    rounds = [row["round"] for row in rows]
    if rounds != list(range(len(rounds))):
        first = next(k for k, r in enumerate(rounds) if r != k)
        shown = ", ".join(map(str, rounds[:12])) + (", ..." if len(rounds) > 12 else "")
        what = f"round {first} is missing" if first not in rounds else f"round {rounds[first]} is out of place"
        raise DamagedFileError(f"{path} holds the rounds {shown}: {what}, where osal writes every round from 0 "
                               f"in order; {fix}")
    return rows


def _check_header(path: Union[str, os.PathLike], header: list, fix: str) -> None:
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise DamagedFileError(f"{path}'s header has the column {unknown[0]!r}, which osal does not write; {fix}")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DamagedFileError(f"{path}'s header lacks the column{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(missing)}; {fix}")
    twice = next((c for c in header if header.count(c) > 1), None)
    if twice:
        raise DamagedFileError(f"{path}'s header names the column {twice} twice; {fix}")


def _checked_row(path: Union[str, os.PathLike], line: int, header: list, cells: list, fix: str) -> dict:
    if len(cells) != len(header):
        raise DamagedFileError(f"{path} line {line} has {len(cells)} cells where its header has {len(header)}; "
                               f"{fix}")
    row = {}
    for column, cell in zip(header, cells):
        value = _parse(cell, path, line, column, fix)
        if value is not None and not math.isfinite(value):
            # osal writes a NaN as an empty cell, never as text
            raise DamagedFileError(f"{path} line {line}, column {column}: {cell!r} is not a finite number; {fix}")
        row[column] = value
    if not isinstance(row["round"], int):
        raise DamagedFileError(f"{path} line {line}: round {cells[header.index('round')]!r} is not a whole number; "
                               f"{fix}")
    return row


def table_header() -> str:
    """The table's column names; the loop appends an ETA column (time left for the run)."""
    return " ".join(h.rjust(len(fmt.format(0 if "d" in fmt else 0.0))) for _, h, fmt in TABLE) + "     eta"


def table_line(row: dict) -> str:
    cells = []
    for column, _, fmt in TABLE:
        value = row.get(column)
        width = len(fmt.format(0 if "d" in fmt else 0.0))
        cells.append("-".rjust(width) if value is None or (isinstance(value, float) and math.isnan(value))
                     else fmt.format(value))
    return " ".join(cells)
