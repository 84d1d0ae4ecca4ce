"""Errors meant for the person at the command line.

Each carries one sentence that names the bad value and the fix; `src/train.py`
prints it without a traceback and exits non-zero.
"""


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
