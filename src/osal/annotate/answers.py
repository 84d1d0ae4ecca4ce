"""Reading what a person answered: the filled batch CSV or a Label Studio JSON export.

Every problem in a file is collected first and reported together, one line per offending
row; answers are returned only when the file answers every item of the batch exactly once,
so an import is all or nothing.
"""

import csv
import io
import json
import os
import posixpath
from typing import Any, Optional, Sequence, Union

import numpy as np

from osal.annotate.project import UNKNOWN_NAME, AnnotationError, Project, shown
from osal.data.oracle import UNKNOWN

CHOICE_NAME, IMAGE_NAME = "choice", "image"  # the Label Studio control and object tag names osal writes
Entry = tuple[str, str, list[str]]  # (where in the file, the image path given, the answers given)


class Problems:
    """Offending rows of one input file, raised together as one AnnotationError."""

    def __init__(self, source: str, what: str):
        self.source, self.what, self.lines = source, what, []

    def add(self, where: str, text: str) -> None:
        self.lines.append(f"{where}: {text}")

    def raise_if_any(self, fix: str) -> None:
        if self.lines:
            shown = self.lines[:50] + ([f"... and {len(self.lines) - 50} more"] if len(self.lines) > 50 else [])
            raise AnnotationError(f"{self.source}: {len(self.lines)} problem(s), so {self.what}:\n  "
                                  + "\n  ".join(shown) + f"\n{fix}")


DELIMITERS = (",", ";", "\t", "|")  # spreadsheets in many locales save CSV with semicolons


def read_csv(path: Union[str, os.PathLike], required: Sequence[str]) -> list:
    """(spreadsheet row number, row dict) of every data row; the header is row 1.

    The delimiter is the one of `DELIMITERS` that splits the header into the required columns.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets add a BOM
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(f"cannot read {path} ({error}); give a UTF-8 CSV file") from error
    first = text.splitlines()[0] if text else ""
    try:
        delimiter = next((d for d in DELIMITERS if set(required) <= {h.strip() for h in _cells(first, d)}), ",")
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise AnnotationError(f"{path} has no column {missing[0]!r} (its first row is {first!r}); the first row "
                                  f"must name the columns {','.join(required)}, separated by commas or semicolons")
        reader.fieldnames = header
        return [(n, {k: (v or "").strip() for k, v in row.items() if k is not None})
                for n, row in enumerate(reader, start=2)]
    except csv.Error as error:
        raise AnnotationError(f"cannot read {path} as CSV ({error}); save it as CSV from the spreadsheet") from error


def _cells(line: str, delimiter: str) -> list:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def resolve_path(text: str, image_folder: str, index_of: dict) -> Optional[str]:
    """The pool path (relative to the image folder) that `text` names, or None.

    One rule for every file that names images (initial labels, answers): `text`, with backslashes read as
    slashes, is first a path inside the image folder ("cat/1.png", "./cat/1.png", "cat\\1.png"), else
    a path on this machine (absolute, or relative to the current directory) to a file of the folder.
    """
    text = text.strip().replace("\\", "/")
    if not text:
        return None
    inside = posixpath.normpath(text)
    if not text.startswith("/") and inside in index_of:
        return inside
    relative = os.path.relpath(os.path.abspath(os.path.expanduser(text)), image_folder).replace(os.sep, "/")
    return relative if relative in index_of else None


def class_index(name: str, class_names: list) -> Optional[int]:
    """Class index of an answer, UNKNOWN for `unknown` (any letter case), None for anything else."""
    name = name.strip()
    if name.lower() == UNKNOWN_NAME:
        return UNKNOWN
    return class_names.index(name) if name in class_names else None


def allowed_answers(class_names: Sequence[str]) -> str:
    return ", ".join(list(class_names) + [UNKNOWN_NAME])


def read_answers(path: Union[str, os.PathLike], project: Project, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """(global indices, answers) of `batch`, in its order, from a filled CSV or a Label Studio export."""
    path = str(path)
    if not os.path.isfile(path):
        raise AnnotationError(f"answer file {path} does not exist; give the filled answers.csv of batch "
                              f"{batch['number']} or a Label Studio JSON export")
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if path.lower().endswith(".json") or head.startswith((b"[", b"{")):
        entries = label_studio_entries(path)
    else:
        entries = [(f"row {n}", row.get("path", ""), [row.get("answer", "")])
                   for n, row in read_csv(path, ("path", "answer"))]
    return check_entries(path, entries, project, batch)


def json_kind(value: Any) -> str:
    """What a JSON value is, in words: 'a JSON list', 'a JSON string', ..."""
    kinds = {dict: "a JSON object", list: "a JSON list", str: "a JSON string", bool: "JSON true or false",
             int: "a JSON number", float: "a JSON number", type(None): "JSON null"}
    return kinds.get(type(value), type(value).__name__)


def export_problem(tasks: Any) -> Optional[str]:
    """Why `tasks` is not a Label Studio JSON export (a list of tasks whose data, annotations, results and choices
    are of the kinds Label Studio writes), or None: checked whole before any of it is used."""
    if not isinstance(tasks, list):
        return f"it is {json_kind(tasks)}, not a list of tasks"
    for position, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            return f"task #{position} is {json_kind(task)}, not a task object"
        where = f"task {task.get('id', f'#{position}')}"
        if not isinstance(task.get("data") or {}, dict):
            return f"{where}'s data is {json_kind(task['data'])}, not an object"
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            return f"{where}'s annotations are not a list of annotation objects"
        for annotation in annotations:
            results = annotation.get("result") or []
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                return f"{where}'s annotation result is not a list of objects"
            for result in results:
                value = result.get("value") or {}
                choices = (value.get("choices") or []) if isinstance(value, dict) else None
                if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                    return f"{where}'s choices are not a list of class names"
    return None


def label_studio_entries(path: str) -> list:
    """(where, image path, [the answers given]) of every task of a Label Studio JSON export."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            tasks = json.load(f)
    except RecursionError:
        raise AnnotationError(f"cannot read {path}: its JSON is nested too deeply, which no Label Studio export "
                              "is, so nothing was applied; export the project from Label Studio as JSON") from None
    except (OSError, ValueError) as error:
        raise AnnotationError(f"cannot read {path} as JSON ({error}); export the project from Label Studio "
                              "as JSON") from error
    problem = export_problem(tasks)
    if problem:
        raise AnnotationError(f"{path} is not a Label Studio JSON export ({problem}), so nothing was applied; "
                              "export the project from Label Studio as JSON, not JSON-MIN or CSV")
    entries = []
    for position, task in enumerate(tasks, start=1):
        data = task.get("data") or {}
        where = f"task {task.get('id', f'#{position}')}"
        answers = []
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue  # a skipped task is unanswered
            choices = [c for r in annotation.get("result") or [] if r.get("type") == "choices"
                       for c in (r.get("value") or {}).get("choices") or []]
            answers.append(choices[0] if len(choices) == 1 else ("" if not choices else " + ".join(choices)))
        entries.append((where, str(data.get("path", "")), answers))
    return entries


def refuse_other_batch(path: str, entries: Sequence[Entry], project: Project, batch: dict) -> None:
    """A file that answers none of the waiting batch's images but another batch's is that batch's file: say so,
    instead of listing every row as wrong."""
    in_batch = set(batch["indices"])
    batch_of = {index: b["number"] for b in project.batches for index in b["indices"]}
    named = [project.index_of[rel] for _, text, _ in entries
             if (rel := resolve_path(text, project.image_folder, project.index_of)) is not None]
    if not named or in_batch.intersection(named):
        return
    others = sorted({batch_of[i] for i in named if i in batch_of})
    if len(others) == 1:  # only one batch waits at a time: the other one was imported already
        raise AnnotationError(f"{path} is batch {others[0]}'s answer file, and batch {others[0]} was imported "
                              f"already; the batch waiting for answers is batch {batch['number']}: import its "
                              f"file, {shown(project.batch_dir(batch['number']))}/answers.csv, filled in")


def check_entries(path: str, entries: Sequence[Entry], project: Project, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """The batch's answers from (where, path text, answers) entries; every problem reported at once."""
    problems = Problems(path, "nothing was applied")
    batch_indices = list(batch["indices"])
    in_batch = set(batch_indices)
    refuse_other_batch(path, entries, project, batch)
    seen = {}  # global index -> where it was first answered
    answers = {}
    for where, text, given in entries:
        rel = resolve_path(text, project.image_folder, project.index_of)
        if rel is None or project.index_of[rel] not in in_batch:
            problems.add(where, f"path {text!r} is not in batch {batch['number']}" if text else "no path given")
            continue
        index = project.index_of[rel]
        if index in seen:
            problems.add(where, f"{rel} is answered again (first in {seen[index]}); answer each image once")
            continue
        seen[index] = where
        if len(given) != 1 or not given[0]:
            problems.add(where, f"{rel} has no answer" if not given or not given[0] else
                         f"{rel} has {len(given)} answers; keep exactly one")
            continue
        answer = class_index(given[0], project.class_names)
        if answer is None:
            problems.add(where, f"answer {given[0]!r} for {rel} is not one of: {allowed_answers(project.class_names)}")
            continue
        answers[index] = answer
    for item, index in enumerate(batch_indices, start=1):
        if index not in seen:
            problems.add(f"item {item}", f"{project.paths[index]} is not answered (no row for it)")
    problems.raise_if_any(f"Fix these and import again; every image of batch {batch['number']} needs exactly one "
                          f"answer from: {allowed_answers(project.class_names)}.")
    indices = np.asarray(batch_indices, dtype=np.int64)
    return indices, np.array([answers[i] for i in batch_indices], dtype=np.int64)
