"""Shared helpers: find image files on disk and decode them into one uint8 array."""

import logging
import math
import os

import numpy as np
from PIL import Image

from osal.errors import ConfigError, brief

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# Decoding more images than this takes long enough (tens of seconds on a laptop)
# that a silent pause looks like a hang, so progress is logged every ~10%.
PROGRESS_THRESHOLD = 5000

# Pillow >= 9.1 moved the filters into Image.Resampling; older ones only have Image.BILINEAR.
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR


def is_image_file(name) -> bool:
    """True for a non-hidden file with one of IMAGE_EXTENSIONS (any letter case)."""
    name = os.path.basename(str(name))
    # Hidden files are skipped: macOS leaves "._x.jpg" metadata files that are not images.
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder) -> list:
    """Every image file under `folder` (recursively), sorted by path so the order never depends on the file system."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(os.path.join(dirpath, f) for f in filenames if is_image_file(f))
    return sorted(found)


def check_image_size(image_size):
    """Return `image_size` (None or a positive int) or raise ConfigError."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ConfigError(
            f"dataset.image_size={image_size!r} is not a positive whole number of pixels; "
            "set it to e.g. 32 or 64, or to null to keep the images' own size."
        )
    return image_size


def _read(path, mode, image_size) -> np.ndarray:
    """Decode one file to an (H, W) or (H, W, 3) uint8 array, resized if asked."""
    try:
        with Image.open(path) as img:
            img = img.convert(mode)  # also forces the (lazy) decode inside the try
            if image_size is not None and img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), _BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ConfigError(f"Could not read image file {path} ({brief(err)}); replace or delete that file.") from err


def decode_images(paths, mode="RGB", image_size=None, desc="images") -> np.ndarray:
    """Decode `paths` into one uint8 array of shape (N, H, W, C).

    Args:
        mode: "RGB" (C = 3) or "L" (grey, C = 1); every image is converted to it.
        image_size: resize every image to (image_size, image_size) with bilinear
            filtering; None keeps the native size, which must then be the same for all.
        desc: what is being decoded, for the progress log lines.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    channels = 3 if mode == "RGB" else 1
    n = len(paths)
    if n == 0:
        side = image_size or 0
        return np.zeros((0, side, side, channels), dtype=np.uint8)
    step = math.ceil(n / 10) if n > PROGRESS_THRESHOLD else 0
    if step:
        log.info("Decoding %d %s ...", n, desc)
    out = None
    for i, path in enumerate(paths):
        pixels = _read(path, mode, image_size)
        if out is None:
            # Allocate once from the first image: appending then stacking would need twice the memory.
            out = np.empty((n, pixels.shape[0], pixels.shape[1], channels), dtype=np.uint8)
            first = path
        elif pixels.shape[:2] != out.shape[1:3]:
            raise ConfigError(
                f"Images differ in size: {first} is {out.shape[2]}x{out.shape[1]} but {path} is "
                f"{pixels.shape[1]}x{pixels.shape[0]}; set dataset.image_size=<pixels> to resize every image to one square size."
            )
        out[i] = pixels.reshape(out.shape[1:])
        if step and ((i + 1) % step == 0 or i + 1 == n):
            log.info("Decoded %d/%d %s (%d%%)", i + 1, n, desc, round(100 * (i + 1) / n))
    return out


def decode_splits(train_paths, train_labels, test_paths, test_labels, class_names, mode="RGB", image_size=None,
                  desc="images", cache_dir=None):
    """Both splits decoded in one call (so a size mismatch between them is caught too) into ImageArrays.

    With `cache_dir`, the decoded arrays are stored there on the first call and read back
    (memory-mapped) on later ones, as long as no file changed (see decode_cache).
    """
    from osal.data.sources import decode_cache
    from osal.data.sources.base import ImageArrays

    def arrays(train_images, test_images):
        return ImageArrays(train_images=train_images, train_labels=np.asarray(train_labels, dtype=np.int64),
                           test_images=test_images, test_labels=np.asarray(test_labels, dtype=np.int64),
                           class_names=class_names)

    key = None
    if cache_dir is not None:
        splits = {"train": (train_paths, train_labels), "test": (test_paths, test_labels)}
        key = decode_cache.cache_key(splits, class_names, mode, image_size)
        cached = decode_cache.read_entry(cache_dir, desc, key)
        if cached is not None:
            log.info("Read %d decoded %s from the cache in %s", len(train_paths) + len(test_paths), desc, cache_dir)
            return arrays(cached["train"], cached["test"])
    images = decode_images(list(train_paths) + list(test_paths), mode, image_size, desc)
    n = len(train_paths)
    result = arrays(images[:n], images[n:])
    if key is not None:
        decode_cache.write_entry(cache_dir, desc, key, {"train": result.train_images, "test": result.test_images},
                                 {"description": desc, "train": n, "test": len(test_paths), "mode": mode,
                                  "image_size": image_size, "classes": list(class_names)})
    return result
