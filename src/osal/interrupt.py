"""Ctrl-C as an exception of osal's own, so that a command can say what it kept instead of a traceback.

Lightning catches KeyboardInterrupt inside `fit`, prints its own message and exits with status 1,
which leaves the command no chance to say where the run stands. While `ctrl_c_interrupts()` is
active, Ctrl-C raises `Interrupted` instead, which Lightning tears down and passes on unchanged.
"""

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Iterator, NoReturn, Optional

EXIT_STATUS = 130  # the shell's convention for a command ended by Ctrl-C (128 + SIGINT)


class Interrupted(BaseException):
    """The person pressed Ctrl-C (a BaseException, like KeyboardInterrupt: no `except Exception` swallows it)."""


@contextlib.contextmanager
def ctrl_c_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return

    def interrupt(signum: int, frame: Optional[FrameType]) -> NoReturn:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops without ceremony
        raise Interrupted()

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def leave_quietly_on_ctrl_c(message: str) -> None:
    """From here until a command installs `ctrl_c_interrupts`: Ctrl-C prints `message` and exits 130, rather
    than a traceback of whatever was being imported or composed."""
    def leave(signum: int, frame: Optional[FrameType]) -> NoReturn:
        print(message, file=sys.stderr)
        raise SystemExit(EXIT_STATUS)

    signal.signal(signal.SIGINT, leave)
