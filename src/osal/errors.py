"""Errors meant for the person at the command line.

Each carries one sentence that names the bad value and the fix; `src/train.py`
prints it without a traceback and exits non-zero.
"""

import errno
from typing import Optional


class OsalError(Exception):
    """A problem the user can fix (bad config value, missing data, ...)."""


class ConfigError(OsalError):
    """A configuration value is out of range or inconsistent."""


class DataNotFoundError(OsalError):
    """The data expected under `data_dir` is missing or in an unexpected layout."""


class DivergenceError(OsalError):
    """A training loss became NaN or infinite."""


def brief(error: BaseException, limit: int = 160) -> str:
    """An underlying error as one short line, to quote inside a one-sentence message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # a download error lists every mirror tried; its last line carries the cause
    text = lines[-1] if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


# what the machine, not the program, got wrong: these get one sentence instead of a traceback
_MACHINE_PROBLEMS = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file grew past the size the file system or a limit allows",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted",
    errno.ENOENT: "there is no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENOLCK: "the file system cannot lock files",
}


def machine_reason(error: BaseException) -> Optional[str]:
    """What went wrong, in words, for an OSError the machine caused (a full disk, a read-only or missing
    folder, no permission), or None for any other error, which stays a bug to be reported with its traceback."""
    if not isinstance(error, OSError) or error.errno not in _MACHINE_PROBLEMS:
        return None
    return _MACHINE_PROBLEMS[error.errno]


def machine_problem(error: BaseException, where: str = "a file") -> Optional[str]:
    """'<path>: <what went wrong>' for an OSError the machine caused, or None (see machine_reason); `where`
    stands in for the path when the error names none (a write through a file object)."""
    reason = machine_reason(error)
    if reason is None:
        return None
    return f"{error.filename if error.filename is not None else where}: {reason}"
