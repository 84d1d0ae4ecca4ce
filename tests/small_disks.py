"""Real read-only and full disks for the tests: small tmpfs file systems mounted in a temporary folder.

Mounting needs root (CI runs as root). A machine where the mount fails skips these tests, saying why,
unless OSAL_REQUIRE_MOUNTS=1 (set by .ci/run as root), which makes that a failure: CI never passes
without having filled a disk.
"""

import os
import subprocess
from contextlib import contextmanager

import pytest


def _mount(*args) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        message = f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root?'}): disk-full tests need root"
        if os.environ.get("OSAL_REQUIRE_MOUNTS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def small_disk(folder, kilobytes: int):
    """`folder` becomes a tmpfs of `kilobytes` KiB for the block; unmounted after it, whatever happens."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={kilobytes}k,mode=0777", "tmpfs", folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True)


def resize(folder, kilobytes: int) -> None:
    """Give a small disk more (or less) room: what freeing space on a full disk does."""
    _mount("-o", f"remount,size={kilobytes}k", str(folder))


def make_read_only(folder) -> None:
    """Remount a small disk read-only (root ignores file permissions, so chmod would not do)."""
    _mount("-o", "remount,ro", str(folder))


def make_writable(folder) -> None:
    _mount("-o", "remount,rw", str(folder))
