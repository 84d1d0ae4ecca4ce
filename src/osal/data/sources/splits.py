"""Both splits of a dataset decoded into ImageArrays, through the decode cache when one is given."""

import logging
import os
from typing import Callable, Optional, Sequence, Union

import numpy as np

from osal.data.sources.base import ImageArrays
from osal.data.sources.decode import decode_images
from osal.data.sources.decode_cache import cache_key, decode_into_entry, read_entry
from osal.data.sources.listing import FileReport

log = logging.getLogger(__name__)


def decode_splits(train_paths: Sequence[Union[str, os.PathLike]], train_labels: Sequence[int],
                  test_paths: Sequence[Union[str, os.PathLike]], test_labels: Sequence[int], class_names: Sequence[str],
                  mode: str = "RGB", image_size: Optional[int] = None, desc: str = "images",
                  cache_dir: Optional[Union[str, os.PathLike]] = None, report: FileReport = None) -> ImageArrays:
    """Both splits decoded in one call (so a size mismatch between them is caught too) into ImageArrays.

    With `cache_dir`, the decoded arrays are stored there on the first call and read back
    (memory-mapped) on later ones, as long as no file changed (see decode_cache). `report` holds
    what listing the files left out; it is logged once, with what decoding converted.
    """
    def arrays(train_images: np.ndarray, test_images: np.ndarray) -> ImageArrays:
        return ImageArrays(train_images=train_images, train_labels=np.asarray(train_labels, dtype=np.int64),
                           test_images=test_images, test_labels=np.asarray(test_labels, dtype=np.int64),
                           class_names=class_names)

    key = None
    if cache_dir is not None:
        splits = {"train": (train_paths, train_labels), "test": (test_paths, test_labels)}
        key = cache_key(splits, class_names, mode, image_size)
        cached = read_entry(cache_dir, desc, key)
        if cached is not None:
            log.info("Read %d decoded %s from the cache in %s", len(train_paths) + len(test_paths), desc, cache_dir)
            if report is not None:
                report.log(desc)
            return arrays(cached["train"], cached["test"])
    listed = FileReport() if report is None else report
    converted = FileReport()  # kept apart from what listing skipped: the cache entry remembers it
    paths, n = list(train_paths) + list(test_paths), len(train_paths)

    said = []

    def decode(allocate: Optional[Callable] = None) -> np.ndarray:
        images = decode_images(paths, mode, image_size, desc, converted, allocate=allocate)
        if not said:  # once, also when the cache could not take the images and they are decoded again
            listed.merge(converted)
            listed.log(desc)
            said.append(True)
        return images

    def decode_noting(allocate: Callable) -> list:
        decode(allocate)
        return converted.lines()

    if key is not None and n:
        # decoded straight into the cache entry's files: a folder larger than memory is never held whole
        description = {"description": desc, "train": n, "test": len(test_paths), "mode": mode,
                       "image_size": image_size, "classes": list(class_names)}
        entry = decode_into_entry(cache_dir, desc, key, n, decode_noting, description)
        if entry is not None:
            return arrays(entry["train"], entry["test"])
    images = decode()
    return arrays(images[:n], images[n:])
