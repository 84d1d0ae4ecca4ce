"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one."""

import contextlib
import os
import shutil
import tempfile
from typing import BinaryIO, Callable, Iterator, Union

# mkstemp makes a private file; the final file gets the permissions a plain open() would give it
_UMASK = os.umask(0o22)
os.umask(_UMASK)


def atomic_write(path: Union[str, os.PathLike], write: Callable[[BinaryIO], object]) -> None:
    """Call `write(binary file)` on a temporary file beside `path`, then rename it over `path`."""
    path = str(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-",
                               suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = path  # a write through the file object names no file: name the one being written
        raise


def atomic_write_text(path: Union[str, os.PathLike], text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


@contextlib.contextmanager
def staging_folder(final_path: Union[str, os.PathLike]) -> Iterator[str]:
    """A new empty folder beside `final_path` to fill, then rename into place inside the block.

    It is removed if the block fails, so a crash never leaves a half-written folder under the final name.
    """
    parent = os.path.dirname(os.path.abspath(str(final_path)))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".writing-")
    os.chmod(staging, 0o777 & ~_UMASK)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(new: str, destination: str) -> None:
    """Rename the folder `new` to `destination`. An existing destination (the caller checked that it holds
    only files it may replace) is moved aside first and deleted once the new one is in place, so a crash
    never leaves neither."""
    if not os.path.exists(destination):
        os.rename(new, destination)
        return
    old = tempfile.mkdtemp(dir=os.path.dirname(destination), prefix=".replaced-")
    os.rename(destination, os.path.join(old, "old"))
    os.rename(new, destination)
    shutil.rmtree(old)
