"""Reading what a person answered: the filled batch CSV or a Label Studio JSON export.

Every problem in a file is collected first and reported together, one line per offending
row; answers are returned only when the file answers every item of the batch exactly once,
so an import is all or nothing.
"""

import csv
import json
import os

import numpy as np

from osal.annotate.project import UNKNOWN_NAME, AnnotationError
from osal.data.oracle import UNKNOWN

CHOICE_NAME, IMAGE_NAME = "choice", "image"  # the Label Studio control and object tag names osal writes


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


def read_csv(path, required) -> list:
    """(spreadsheet row number, row dict) of every data row; the header is row 1."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets add a BOM
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in required if c not in header]
            if missing:
                raise AnnotationError(f"{path} has no column {missing[0]!r} (its header is {','.join(header)!r}); "
                                      f"the first row must name the columns {','.join(required)}")
            reader.fieldnames = header
            return [(n, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for n, row in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise AnnotationError(f"cannot read {path} ({error}); give a UTF-8 CSV file") from error


def resolve_path(text: str, image_folder: str, index_of: dict):
    """The pool path (relative to the image folder) that `text` names, or None.

    Accepted: the path inside the image folder as written by osal, or any path to the same file
    (absolute, or relative to the current directory).
    """
    text = text.strip().replace("\\", "/")
    if text in index_of:
        return text
    if text:
        relative = os.path.relpath(os.path.abspath(os.path.expanduser(text)), image_folder).replace(os.sep, "/")
        if relative in index_of:
            return relative
    return None


def class_index(name: str, class_names: list):
    """Class index of an answer, UNKNOWN for `unknown` (any letter case), None for anything else."""
    name = name.strip()
    if name.lower() == UNKNOWN_NAME:
        return UNKNOWN
    return class_names.index(name) if name in class_names else None


def allowed_answers(class_names) -> str:
    return ", ".join(list(class_names) + [UNKNOWN_NAME])


def read_answers(path, project, batch: dict):
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


def label_studio_entries(path) -> list:
    """(where, image path, [the answers given]) of every task of a Label Studio JSON export."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            tasks = json.load(f)
    except (OSError, ValueError) as error:
        raise AnnotationError(f"cannot read {path} as JSON ({error}); export the project from Label Studio "
                              "as JSON") from error
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise AnnotationError(f"{path} is not a Label Studio JSON export (a list of tasks); export the project "
                              "from Label Studio as JSON, not JSON-MIN or CSV")
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


def check_entries(path, entries, project, batch: dict):
    """The batch's answers from (where, path text, answers) entries; every problem reported at once."""
    problems = Problems(path, "nothing was applied")
    batch_indices = list(batch["indices"])
    in_batch = set(batch_indices)
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
