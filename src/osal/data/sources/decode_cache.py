"""An on-disk cache of decoded image folders: decode JPEG/PNG files once, read raw arrays after.

Decoding 100,000 JPEGs takes minutes; reading the same pixels back from one `.npy`
file takes about a second. An entry is keyed by everything that decides its pixels:
every file's path, size and modification time, its label, the class names, the colour
mode and the resize. Change any file (or add, remove, relabel one) and the key changes,
so a stale entry is never read; it just stays on disk until the cache folder is deleted.

Layout: `<cache_dir>/<name>-<key>/{train_images.npy, test_images.npy, source.json}`.
An entry is written into a temporary folder and renamed into place, so a crash or a
concurrent job never leaves a half-written entry under the final name.
"""

import hashlib
import json
import logging
import os
import re
from typing import Optional, Sequence, Union

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


def write_entry(cache_dir: Union[str, os.PathLike], name: str, key: str, images: dict, description: dict) -> None:
    """Store `images` ({split: array}) under the key; a cache that cannot be written is only a warning."""
    folder = _entry_dir(cache_dir, name, key)
    parent = os.path.dirname(folder)
    try:
        with staging_folder(folder) as staging:
            for split in SPLITS:
                np.save(os.path.join(staging, f"{split}_images.npy"), images[split])
            with open(os.path.join(staging, "source.json"), "w") as f:
                json.dump(description, f, indent=1)
            os.rename(staging, folder)  # atomic; fails if another job stored the same entry first
    except OSError as err:
        if read_entry(cache_dir, name, key) is not None:
            return  # another job stored the same entry first
        log.warning("could not write the decode cache under %s (%s); the next run decodes again. "
                    "Set cache_dir to a writable folder, or to null to silence this", parent, brief(err))
        return
    log.info("cached the decoded images in %s", folder)
