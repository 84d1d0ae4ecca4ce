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
