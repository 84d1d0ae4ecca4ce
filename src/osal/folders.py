"""What a command needs of its folder before it starts: that it can write there, and that no other command
is using it.

Both are checked up front, so that a read-only folder is refused before any training rather than
after it, and two commands on one run directory or annotation project never interleave their writes.
"""

import contextlib
import fcntl
import json
import os
import tempfile
import time
from typing import Iterator, Optional, Union

from osal.errors import OsalError, machine_reason

LOCK_FILE = ".osal.lock"


class FolderError(OsalError):
    """A folder cannot be written, or another command is using it."""


def shown(path: Union[str, os.PathLike], base: Optional[str] = None) -> str:
    """A path as logs, summaries and the runs a campaign starts name it: relative to `base` (the working
    directory by default) when it lies inside, so that the records a campaign commits name no one's home
    directory; else absolute."""
    absolute, here = os.path.abspath(str(path)), os.path.abspath(base or os.getcwd())
    return os.path.relpath(absolute, here) if os.path.commonpath([absolute, here]) == here else absolute


def nearest_existing(path: str) -> str:
    path = os.path.abspath(str(path))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def check_writable(folder: Union[str, os.PathLike], what: str, fix: str) -> None:
    """Raise FolderError ('cannot write <what> <folder>: <why>; <fix>') unless a file can be created in `folder`,
    or, when it does not exist yet, in the nearest folder above it (where it would be created)."""
    folder = os.path.abspath(str(folder))
    target = nearest_existing(folder)
    if not os.path.isdir(target):
        raise FolderError(f"cannot write {what} {folder}: {target} is a file, not a folder; {fix}")
    try:
        with tempfile.TemporaryFile(dir=target, prefix=".osal-write-check-"):
            pass
    except OSError as error:
        raise FolderError(f"cannot write {what} {folder}: {machine_reason(error) or error.strerror}; {fix}") from None


@contextlib.contextmanager
def exclusive_use(folder: Union[str, os.PathLike], command: str) -> Iterator[None]:
    """Hold `folder` for `command` while the block runs; a second command on it is refused with one sentence.

    The lock is an flock on <folder>/.osal.lock, which the kernel drops when the process ends however it
    ends, so a killed command never leaves a stale lock behind.
    """
    path = os.path.join(str(folder), LOCK_FILE)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise FolderError(f"{folder} is in use by another command ({holder(handle.read())}); wait for it to "
                              "finish, or stop it, then run this one again") from None
        except OSError:
            pass  # a file system without locks (some network mounts): go on unguarded rather than refuse
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command, "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        yield
    finally:
        handle.close()


def holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"{info['command']}, process {info['pid']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "process unknown"
