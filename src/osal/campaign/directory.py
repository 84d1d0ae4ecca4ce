"""A campaign directory as a window finds it: committed, cloned, merged or copied, so anyone's.

What a window will write to is checked before it writes anything or starts any run (a run found wrong
halfway would leave the runs started before it running): the directory is a folder osal can write; it holds
files and folders only, no symbolic link (a link would carry the window's writes, or a run's, out of the
campaign); the files a window appends to or replaces are files and the folders it writes in are folders;
and every record of every run of the grid reads back as osal wrote it (`osal.stored`), the run state's
pickle-free arrays and JSON included.
"""

import os
from typing import Iterable, Sequence

from osal.campaign.progress import RUNS, damaged_record_fix, ended_early, read_rows, run_dir
from osal.folders import LOCK_FILE, FolderError, check_writable
from osal.records.run_files import record_kind
from osal.records.run_state import STATE_FILE, read_state
from osal.records.summary import SUMMARY_FILE
from osal.stored import read_npz

CAMPAIGN_FILE, LOG_FILE = "campaign.yaml", "campaign.log"
# what a window and its run write in a run's folder besides the records (osal.records.run_files)
RUN_FILES, RUN_FOLDERS = ("console.log", "train.log"), (".hydra",)


def check_layout(directory: str) -> None:
    """The campaign directory is a folder (or not there yet) of files and folders only, the campaign's own files
    and folders each of its kind; FolderError otherwise."""
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise FolderError(f"{directory} is a file, not a campaign directory; give the folder that holds (or is to "
                          "hold) the campaign's campaign.yaml and runs/")
    if not os.path.isdir(directory):
        return
    for parent, folders, files in os.walk(directory):
        for name in folders + files:
            path = os.path.join(parent, name)
            if os.path.islink(path):
                raise FolderError(f"{path} is a symbolic link (to {os.readlink(path)}); a campaign writes inside its "
                                  "own directory only, so put the file or folder itself there, or remove the link")
            if not (os.path.isfile(path) or os.path.isdir(path)):
                raise FolderError(f"{path} is neither a file nor a folder; a campaign directory holds files and "
                                  "folders only: remove it")
    expect_kinds(directory, files=(CAMPAIGN_FILE, LOG_FILE, LOCK_FILE), folders=(RUNS,))


def expect_kinds(folder: str, files: Iterable[str] = (), folders: Iterable[str] = ()) -> None:
    """Each of `files` in `folder` is a file and each of `folders` a folder, where it exists."""
    for name in files:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            raise FolderError(f"{path} is a folder, not a file; a window writes the file {name} there: move the "
                              "folder away")
    for name in folders:
        path = os.path.join(folder, name)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise FolderError(f"{path} is a file, not a folder; a window writes in the folder {name}: move the file "
                              "away")


def check_before_writing(directory: str, names: Sequence[str]) -> None:
    """What a window needs of the campaign directory (`check_layout` done) and of the folders of the runs
    `names`; FolderError or DamagedFileError naming the first thing wrong."""
    check_writable(directory, "the campaign", "give the campaign a directory on a disk this machine can write")
    expect_kinds(os.path.join(directory, RUNS), folders=names)
    for name in names:
        folder = run_dir(directory, name)
        if os.path.isdir(folder):
            expect_kinds(folder, files=RUN_FILES, folders=RUN_FOLDERS)
            check_records(folder)


def check_records(folder: str) -> None:
    """Every record in a run's folder (metrics.csv, summary.json, state.npz, pool_round_XX.npz) reads back as
    osal wrote it."""
    for name in sorted(os.listdir(folder)):
        kind, path = record_kind(name), os.path.join(folder, name)
        if kind is None:
            continue
        expect_kinds(folder, files=[name])
        fix = damaged_record_fix(path)
        if kind == "metrics.csv":
            read_rows(folder)
        elif kind == SUMMARY_FILE:
            ended_early(folder)
        elif kind == STATE_FILE:
            read_state(path)
        else:
            read_npz(path, ("state", "query_round"), fix)
