"""The job's log file (train.log), opened only once the run directory is known to be this run's.

Hydra sets up the job's logging, and so would create or append to <run dir>/train.log, before train.py's own
code can look at the directory. conf/hydra/job_logging/osal.yaml logs to this handler instead, which keeps the
lines in memory until `open_held_logs` is called (osal.loop.run_folder, once the directory is accepted), then
writes them and everything after. A refused command leaves no log behind; its lines went to the console.
"""

import logging
import os
from typing import Union

HELD_AT_MOST = 10_000  # lines kept before the file opens; a command is refused (or accepted) long before


class HeldFileHandler(logging.FileHandler):
    """A FileHandler that opens its file (and writes what it held) only when `open_file` is called."""

    def __init__(self, filename: Union[str, os.PathLike], mode: str = "a", encoding: Union[str, None] = None,
                 delay: bool = True, errors: Union[str, None] = None):
        super().__init__(filename, mode, encoding, delay=True, errors=errors)
        self.held = []  # formatted lines; None once released

    def emit(self, record: logging.LogRecord) -> None:
        if self.held is None:
            super().emit(record)
        elif len(self.held) < HELD_AT_MOST:
            try:
                self.held.append(self.format(record))
            except Exception:  # noqa: BLE001 - as logging does: a bad record must not end the run
                self.handleError(record)

    def open_file(self) -> None:
        self.acquire()  # logging's lock of this handler (Handler.acquire / release)
        try:
            held, self.held = self.held, None
            if held:
                if self.stream is None:
                    self.stream = self._open()
                self.stream.write("".join(line + self.terminator for line in held))
                self.flush()
        except OSError:
            pass  # a log that cannot be written is dropped, as logging drops any line it cannot write
        finally:
            self.release()


def held_logs() -> list:
    """The held log handlers of the root logger (those the job's logging config made)."""
    return [h for h in logging.getLogger().handlers if isinstance(h, HeldFileHandler)]


def held_log_files(directory: Union[str, os.PathLike]) -> list:
    """The names, relative to `directory`, of the held log files inside it."""
    directory = os.path.abspath(str(directory))
    return [os.path.relpath(h.baseFilename, directory) for h in held_logs()
            if os.path.dirname(h.baseFilename) == directory]


def open_held_logs() -> None:
    """The run directory is this run's: open the held log files and write what they held."""
    for handler in held_logs():
        if handler.held is not None:
            handler.open_file()
