"""How a job of a multirun fails with a sentence the user can act on, without a traceback under it."""

from hydra.errors import CompactHydraException


class JobFailed(CompactHydraException):
    """Raised by a multirun job for an OsalError: Hydra marks the job failed, runs the others, and at the end
    prints this message alone (it prints the traceback of any other exception)."""
