"""The annotation commands on real people's folders and files: nothing they did not write is deleted or
overwritten, spreadsheet CSVs and stray answer files are understood, and read-only or full disks, Ctrl-C
and a second command at once end in one sentence with the project intact."""

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from osal.annotate.cli import main
from osal.annotate.create import create_project
from osal.annotate.export import EXPORT_MARK
from osal.annotate.project import CONFIG_FILE, Project
from osal.folders import LOCK_FILE, exclusive_use

from annotation_helpers import FAST, KNOWN, digits, fill_sheet, first_batch, state_bytes, write_sheet  # noqa: F401
from conftest import ROOT
from small_disks import make_read_only, resize, small_disk

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast


@pytest.fixture
def project(first_batch, tmp_path):
    """A copy of the shared project, batch 1 waiting: each test may change its own."""
    directory = tmp_path / "project"
    shutil.copytree(first_batch, directory)
    return directory


def answered(project, digits, tmp_path):  # noqa: F811
    """Batch 1 answered: the project is ready for `next`."""
    sheet = tmp_path / "batch_01.csv"
    shutil.copy(Project(project).batch_dir(1) + "/answers.csv", sheet)
    fill_sheet(sheet, digits)
    assert main(["-p", str(project), "import", str(sheet)]) == 0
    return project


def error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


# -- export never deletes what it did not write ------------------------------------------------
def test_export_refuses_a_folder_holding_other_files_and_leaves_them(project, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["-p", str(project), "export", "--to", str(mine)]) == 2
    assert "holds 'thesis.tex', which no earlier export of this project wrote" in error_line(capsys)
    assert (mine / "thesis.tex").read_text() == "years of work" and os.listdir(mine) == ["thesis.tex"]


@pytest.mark.parametrize("where", ["project", "above"])
def test_export_refuses_the_project_folder_and_any_folder_holding_it(project, where, capsys):
    def files():  # and their contents; the command's own lock file aside
        return {str(p): p.read_bytes() for p in project.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    before = files()
    target = project if where == "project" else project.parent
    assert main(["-p", str(project), "export", "--to", str(target)]) == 2
    assert "it is the project folder or holds it" in error_line(capsys)
    assert files() == before
    assert Project(project).pending["number"] == 1


def test_export_replaces_its_own_earlier_export_but_not_a_file_added_to_it(project, tmp_path, capsys):
    destination = tmp_path / "out"
    assert main(["-p", str(project), "export", "--to", str(destination)]) == 0
    assert (destination / EXPORT_MARK).exists() and (destination / "labels.csv").exists()
    (destination / "labels.csv").write_text("stale")
    assert main(["-p", str(project), "export", "--to", str(destination)]) == 0  # its own files: replaced
    assert (destination / "labels.csv").read_text().startswith("path,class,batch")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left beside it
    (destination / "imagefolder" / "notes.txt").write_text("mine")
    assert main(["-p", str(project), "export", "--to", str(destination)]) == 2
    assert "holds 'imagefolder/notes.txt'" in error_line(capsys)
    assert (destination / "imagefolder" / "notes.txt").read_text() == "mine"
    (tmp_path / "a_file").write_text("x")
    assert main(["-p", str(project), "export", "--to", str(tmp_path / "a_file")]) == 2
    assert "it is a file" in error_line(capsys)


def test_predict_checks_its_out_file_before_any_work(project, tmp_path, capsys):
    missing = tmp_path / "no_such_folder" / "p.csv"
    # the images do not exist either: the --out problem is found first, before anything is read
    assert main(["-p", str(project), "predict", "/nonexistent/images", "--out", str(missing)]) == 2
    assert f"the folder of --out {missing} does not exist" in error_line(capsys)
    theirs = tmp_path / "theirs.csv"
    theirs.write_text("name,score\nx,1\n")
    assert main(["-p", str(project), "predict", "/nonexistent/images", "--out", str(theirs)]) == 2
    assert "exists and is not an earlier predictions file" in error_line(capsys)
    assert theirs.read_text() == "name,score\nx,1\n"


# -- answer files as people make them ------------------------------------------------------------
@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_spreadsheet_csv_with_semicolons_or_tabs_is_read(project, digits, tmp_path, delimiter):  # noqa: F811
    rows = fill_sheet(Project(project).batch_dir(1) + "/answers.csv", digits, out=tmp_path / "plain.csv")
    write_sheet(tmp_path / "locale.csv", rows, delimiter=delimiter)
    assert main(["-p", str(project), "import", str(tmp_path / "locale.csv")]) == 0
    project_now = Project(project)
    assert project_now.pending is None and project_now.batches[0]["answered"]


def test_another_batchs_answer_file_is_named_as_such(project, digits, tmp_path, capsys):  # noqa: F811
    answered(project, digits, tmp_path)
    assert main(["-p", str(project), "next"]) == 0
    before = state_bytes(project)
    capsys.readouterr()
    assert main(["-p", str(project), "import", str(tmp_path / "batch_01.csv")]) == 2
    line = error_line(capsys)
    assert "is batch 1's answer file, and batch 1 was imported already" in line
    assert "the batch waiting for answers is batch 2" in line and "row " not in line
    assert state_bytes(project) == before


def test_dot_slash_paths_follow_the_same_rule_as_the_others(digits, tmp_path):  # noqa: F811
    folder, _ = digits
    with open(folder / "initial.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    forms = [lambda p: f"./{p}", lambda p: str(folder / "images" / p), lambda p: f".\\{p}", lambda p: p]
    for n, row in enumerate(rows):
        row["path"] = forms[n % len(forms)](row["path"])
    write_sheet(tmp_path / "initial.csv", rows, columns=("path", "class"))
    created = create_project(tmp_path / "p", folder / "images", list(KNOWN), tmp_path / "initial.csv", FAST)
    assert len(created.pool.queried_in(0)) == len(rows)


# -- disks, interruptions, two commands at once ---------------------------------------------------
def test_a_second_command_on_the_project_is_refused(project, capsys):
    before = state_bytes(project)
    with exclusive_use(project, "annotate.py next"):
        assert main(["-p", str(project), "export"]) == 2
        assert main(["-p", str(project), "status"]) == 0  # reading is fine meanwhile
    assert "is in use by another command (annotate.py next, process " in error_line(capsys)
    assert state_bytes(project) == before


def test_a_read_only_project_is_refused_before_any_training(project, tmp_path, capsys):
    with small_disk(tmp_path / "disk", 4096) as disk:
        copy = os.path.join(disk, "project")
        shutil.copytree(project, copy)
        make_read_only(disk)
        assert main(["-p", copy, "export"]) == 2
        assert f"cannot write the annotation project {copy}: the file system is read-only" in error_line(capsys)
        assert main(["-p", copy, "status"]) == 0


def test_a_disk_that_fills_during_next_leaves_the_project_as_it_was(project, digits, tmp_path, capsys):  # noqa: F811
    answered(project, digits, tmp_path)
    used = sum(p.stat().st_size for p in project.rglob("*") if p.is_file())
    with small_disk(tmp_path / "disk", used // 1024 + 24) as disk:  # the models fit, the batch files do not
        copy = Path(disk) / "project"
        shutil.copytree(project, copy)
        before = state_bytes(copy)
        capsys.readouterr()
        assert main(["-p", str(copy), "next"]) == 2
        assert "the disk is full (no space left on device)" in error_line(capsys)
        assert state_bytes(copy) == before and Project(copy).pending is None
        leftovers = [p for p in copy.rglob(".*") if p.name.startswith((".writing-", ".tmp-"))]
        assert not leftovers  # nothing half-written
        resize(disk, 8192)
        assert main(["-p", str(copy), "next"]) == 0  # with room again, the same command goes on
        assert Project(copy).pending["number"] == 2


def test_ctrl_c_during_next_keeps_the_project_as_it_was(project, digits, tmp_path):  # noqa: F811
    answered(project, digits, tmp_path)
    cfg = OmegaConf.load(project / CONFIG_FILE)
    cfg.trainer.max_epochs = 3000  # long enough to be interrupted
    OmegaConf.save(cfg, project / CONFIG_FILE)
    before = state_bytes(project)
    process = subprocess.Popen([sys.executable, "src/annotate.py", "-p", str(project), "next"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:  # wait until the training has started
        if "training the detector" in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1].startswith(f"interrupted: the project in {project} is as it was before "
                                                   "this `next`")
    assert state_bytes(project) == before and Project(project).pending is None


# -- init on odd folders ---------------------------------------------------------------------------
def test_init_lists_every_unreadable_image_at_once(digits, tmp_path, capsys):  # noqa: F811
    folder, _ = digits
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    broken = sorted(images.iterdir())[-3:]
    for path in broken:
        path.write_bytes(b"\x89PNG but cut short")
    assert main(["-p", str(tmp_path / "p"), "init", "--images", str(images), "--classes", ",".join(KNOWN),
                 "--labels", str(folder / "initial.csv"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Could not read 3 image files") and "Traceback" not in err
    assert all(str(path) in err for path in broken)
    assert not (tmp_path / "p").exists()


def test_init_walks_a_looping_link_once(digits, tmp_path):  # noqa: F811
    folder, _ = digits
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    os.symlink("..", images / "loop")  # images/loop -> tmp_path, which holds images/ again
    created = create_project(tmp_path / "p", images, list(KNOWN), folder / "initial.csv", FAST)
    assert len(created.paths) == 300 and len(set(created.paths)) == 300
    assert np.all([not p.startswith("loop/") for p in created.paths])


def test_a_batch_folder_left_by_a_failed_next_is_replaced_only_when_it_holds_nothing_else(project, digits,  # noqa: F811
                                                                                          tmp_path, capsys):
    answered(project, digits, tmp_path)
    leftover = project / "batches" / "batch_02"
    leftover.mkdir()
    (leftover / "answers.csv").write_text("stale, from a next that failed before recording batch 2")
    (leftover / "my_notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["-p", str(project), "next"]) == 2
    assert "holds my_notes.txt, which osal did not write" in error_line(capsys)
    assert (leftover / "my_notes.txt").read_text() == "mine" and Project(project).pending is None
    (leftover / "my_notes.txt").unlink()
    assert main(["-p", str(project), "next"]) == 0
    assert (leftover / "answers.csv").read_text().startswith("item,path,suggestion")
