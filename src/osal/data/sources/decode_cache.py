"""An on-disk cache of decoded image folders: decode JPEG/PNG files once, read raw arrays after.

Decoding 100,000 JPEGs takes minutes; reading the same pixels back from one `.npy`
file takes about a second. An entry is keyed by everything that decides its pixels:
every file's path, size and modification time, its label, the class names, the colour
mode and the resize. Change any file (or add, remove, relabel one) and the key changes,
so a stale entry is never read; it just stays on disk until the cache folder is deleted.

Layout: `<cache_dir>/<name>-<key>/{train_images.npy, test_images.npy, source.json}`.
An entry is written into a temporary folder and renamed into place, so a crash or a
concurrent job never leaves a half-written entry under the final name. The images are
decoded straight into the entry's files (`decode_into_entry`), their space reserved first:
decoding a folder larger than memory holds one image at a time.
"""

import hashlib
import json
import logging
import os
import re
from typing import Callable, Optional, Sequence, Union

import numpy as np

from osal.atomic import staging_folder
from osal.data.sources.decode import unreadable_error
from osal.errors import brief

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the decode itself changes (e.g. another resize filter)
SPLITS = ("train", "test")


def cache_key(splits: dict, class_names: Sequence[str], mode: str, image_size: Optional[int]) -> str:
    """A hex digest of the files (path, size, mtime), their labels and the decode options."""
    digest = hashlib.sha256()
    header = {"version": FORMAT_VERSION, "mode": mode, "image_size": image_size, "classes": list(class_names)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    problems = []  # files that cannot be read (a link to a missing file): all named in one error
    for split in SPLITS:
        paths, labels = splits[split]
        digest.update(f"\n{split} {len(paths)}\n".encode())
        for path, label in zip(paths, labels):
            try:
                stat = os.stat(path)
            except OSError as err:
                problems.append((path, brief(err)))
                continue
            digest.update(f"{os.path.abspath(path)}\t{stat.st_size}\t{stat.st_mtime_ns}\t{int(label)}\n".encode())
    if problems:
        raise unreadable_error(problems)
    return digest.hexdigest()[:24]


def _entry_dir(cache_dir: Union[str, os.PathLike], name: str, key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40] or "images"
    return os.path.join(os.path.expanduser(str(cache_dir)), f"{slug}-{key}")


def read_entry(cache_dir: Union[str, os.PathLike], name: str, key: str) -> Optional[dict[str, np.ndarray]]:
    """{split: uint8 (N, H, W, C) array, memory-mapped} of a complete entry, or None.

    The conversions the decode reported (16-bit images scaled, ...) are logged again: they still apply.
    """
    folder = _entry_dir(cache_dir, name, key)
    if not os.path.isfile(os.path.join(folder, "source.json")):
        return None
    try:
        entry = {split: np.load(os.path.join(folder, f"{split}_images.npy"), mmap_mode="r") for split in SPLITS}
        with open(os.path.join(folder, "source.json")) as f:
            notes = json.load(f).get("notes")
        if notes:
            log.warning("%s (when they were decoded): %s", name, "; ".join(notes))
        return entry
    except (OSError, ValueError) as err:
        log.warning("ignoring the unreadable decode cache entry %s (%s); decoding again", folder, brief(err))
        return None


class RowFile:
    """A new .npy file of `rows` uint8 images, written row by row with pwrite, its disk space reserved up front:
    a full disk is an OSError here rather than a SIGBUS halfway, and the rows written never become this
    process's resident memory (a memory map written in place would keep every page it touched)."""

    def __init__(self, path: str, rows: int, row_shape: tuple) -> None:
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, *row_shape))
        self.offset, self.row_bytes, self.rows = int(header.offset), int(np.prod(row_shape)), rows
        del header  # the header and the file's size are written; the rows go through the descriptor
        self.fd = os.open(path, os.O_RDWR)
        os.posix_fallocate(self.fd, 0, os.fstat(self.fd).st_size)

    def __setitem__(self, row: int, pixels: np.ndarray) -> None:
        data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
        os.pwrite(self.fd, data, self.offset + row * self.row_bytes)

    def close(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None


class SplitWriter:
    """The (N, H, W, C) array `decode_images` fills, written row by row into the train and test files."""

    def __init__(self, train: RowFile, test: RowFile, row_shape: tuple) -> None:
        self.parts = (train, test)
        self.shape = (train.rows + test.rows, *row_shape)

    def __setitem__(self, row: int, pixels: np.ndarray) -> None:
        train, test = self.parts
        if row < train.rows:
            train[row] = pixels
        else:
            test[row - train.rows] = pixels


def decode_into_entry(cache_dir: Union[str, os.PathLike], name: str, key: str, train_rows: int,
                      decode: Callable[[Callable[[tuple], SplitWriter]], list],
                      description: dict) -> Optional[dict[str, np.ndarray]]:
    """Decode straight into a new entry and return it (memory-mapped), or None when the cache cannot be
    written (a warning; the caller decodes in memory).

    `decode(allocate)` decodes every train then test image into `allocate(shape)` and returns the notes of
    what it converted; its own errors (unreadable files) propagate and leave no entry.
    """
    folder = _entry_dir(cache_dir, name, key)
    try:
        with staging_folder(folder) as staging:
            written = []

            def allocate(shape: tuple) -> SplitWriter:
                for split, rows in (("train", train_rows), ("test", shape[0] - train_rows)):
                    written.append(RowFile(os.path.join(staging, f"{split}_images.npy"), rows, shape[1:]))
                return SplitWriter(*written, row_shape=shape[1:])

            try:
                notes = decode(allocate)
            finally:
                for file in written:
                    file.close()
            with open(os.path.join(staging, "source.json"), "w") as f:
                json.dump({**description, "notes": notes}, f, indent=1)
            os.rename(staging, folder)  # atomic; fails if another job stored the same entry first
    except OSError as err:
        entry = read_entry(cache_dir, name, key)
        if entry is not None:
            return entry  # another job stored the same entry first
        log.warning("could not write the decode cache under %s (%s); decoding in memory, and the next run decodes "
                    "again. Set cache_dir to a writable folder with room, or to null to silence this",
                    os.path.dirname(folder), brief(err))
        return None
    log.info("cached the decoded images in %s", folder)
    return read_entry(cache_dir, name, key)
