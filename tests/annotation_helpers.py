"""Shared by the annotation tests: 300 digits written as PNGs, a scripted annotator, a project with its first
batch waiting (module-scoped fixtures: each test module that imports them gets its own)."""

import csv
import hashlib
import importlib.util
import json
import shutil

import pytest

from osal.annotate import session
from osal.annotate.create import create_project
from osal.annotate.project import STATE_FILE, Project
from osal.folders import LOCK_FILE
from osal.quiet import quiet_lightning

from conftest import ROOT

KNOWN = ("0", "1", "2")
FAST = ["dataset.channels=1", "trainer=cpu", "trainer.max_epochs=4", "al.query_size=20", "seed=3"]


def _load_script():
    spec = importlib.util.spec_from_file_location("digits_to_pngs", ROOT / "scripts" / "digits_to_pngs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DIGITS = _load_script()  # writes the PNG folder and is the scripted annotator


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """300 digit PNGs, their true classes, and an initial CSV with 2 images per wanted class."""
    out = tmp_path_factory.mktemp("digits")
    truth = dict(DIGITS.write_digits(str(out), count=300, known=KNOWN, initial=2))
    return out, truth


def truthful(truth, path):
    return truth[path] if truth[path] in KNOWN else "unknown"


def read_sheet(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_sheet(path, rows, columns=("item", "path", "suggestion", "known_probability", "answer"), **kwargs):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), **kwargs)
        writer.writeheader()
        writer.writerows(rows)


def fill_sheet(sheet, digits, out=None):
    """The scripted annotator (scripts/digits_to_pngs.py --fill): the answer column filled from ground truth."""
    folder, _ = digits
    if out is not None:
        shutil.copy(sheet, out)
    return DIGITS.fill_answers(folder / "truth.csv", out or sheet, KNOWN)


def label_studio_export(tasks_file, truth, out):
    """What Label Studio exports after a person answered every task of tasks.json."""
    with open(tasks_file) as f:
        tasks = json.load(f)
    for task in tasks:
        answer = truthful(truth, task["data"]["path"])
        task["annotations"] = [{"id": task["id"], "was_cancelled": False, "ground_truth": False, "result": [
            {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [answer]}}]}]
    with open(out, "w") as f:
        json.dump(tasks, f)
    return tasks


@pytest.fixture(scope="module")
def first_batch(digits, tmp_path_factory):
    """A project with its first batch written and waiting for answers."""
    quiet_lightning()
    folder, truth = digits
    directory = tmp_path_factory.mktemp("projects") / "digits"
    create_project(directory, folder / "images", list(KNOWN), folder / "initial.csv", FAST)
    session.next_batch(Project(directory))
    return directory


def state_bytes(directory):
    return (directory / STATE_FILE).read_bytes()


def file_digests(directory):
    """{relative path: sha256, or "folder"} of everything under `directory`: equal before and after a refused
    command means nothing was changed, added or removed. The lock file a command holds the project with is left
    out (osal's own, not the project's)."""
    return {str(p.relative_to(directory)): "folder" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.name != LOCK_FILE}
