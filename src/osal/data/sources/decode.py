"""Decoding image files into one uint8 array: every file the same size, every unreadable file named at once."""

import logging
import math
import os
from typing import Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image

from osal.data.sources.listing import FileReport
from osal.errors import ConfigError, brief

log = logging.getLogger(__name__)

# Decoding more images than this takes long enough (tens of seconds on a laptop)
# that a silent pause looks like a hang, so progress is logged every ~10%.
PROGRESS_THRESHOLD = 5000
# an error lists at most this many unreadable files (and how many more there are)
SHOWN_PROBLEMS = 20

# Pillow >= 9.1 moved the filters into Image.Resampling; older ones only have Image.BILINEAR.
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR

def image_mode(channels: object) -> str:
    """The Pillow mode images of `channels` are decoded in: 3 is RGB, 1 grey; anything else is a ConfigError."""
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ConfigError(f"dataset.channels={channels!r} is not supported; set it to 3 (RGB) or 1 (grey)")
    return "RGB" if channels == 3 else "L"


def check_image_size(image_size: object) -> Optional[int]:
    """Return `image_size` (None or a positive int) or raise ConfigError."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ConfigError(
            f"dataset.image_size={image_size!r} is not a positive whole number of pixels; "
            "set it to e.g. 32 or 64, or to null to keep the images' own size."
        )
    return image_size


def to_8_bits(img: Image.Image, report: FileReport, path: Union[str, os.PathLike]) -> Image.Image:
    """16-bit and 32-bit integer images scaled to 0-255 (Pillow's own conversion clips them, which turns a
    16-bit image nearly white); float images taken as 0-1 when they lie in it, else as 0-255, clipped."""
    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        report.add("16-bit (or 32-bit integer) image(s) scaled to 8 bits (0-65535 to 0-255)", path)
        scaled = (np.clip(values, 0, 65535) * 255 + 32767) // 65535
        return Image.fromarray(scaled.astype(np.uint8), "L")
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        finite = values[np.isfinite(values)]
        unit = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
        report.add("floating-point image(s) read as " + ("0-1 values" if unit else "0-255 values, clipped"), path)
        values = np.nan_to_num(values * 255.0 if unit else values, nan=0.0)
        return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    return img


def _read(path: Union[str, os.PathLike], mode: str, image_size: Optional[int], report: FileReport) -> np.ndarray:
    """Decode one file to an (H, W) or (H, W, 3) uint8 array, resized if asked; OSError-like failures raise."""
    with Image.open(path) as img:
        img = to_8_bits(img, report, path).convert(mode)  # also forces the (lazy) decode
        if image_size is not None and img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), _BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def _in_memory(shape: tuple) -> np.ndarray:
    return np.empty(shape, dtype=np.uint8)


UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def unreadable_error(problems: Sequence[tuple[Union[str, os.PathLike], str]]) -> ConfigError:
    """One error naming every unreadable file: [(path, why)]."""
    if len(problems) == 1:
        path, why = problems[0]
        return ConfigError(f"Could not read image file {path} ({why}); replace or delete that file.")
    shown = [f"{path} ({why})" for path, why in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        shown.append(f"... and {len(problems) - SHOWN_PROBLEMS} more")
    return ConfigError(f"Could not read {len(problems)} image files; replace or delete them:\n  " + "\n  ".join(shown))


def decode_images(paths: Sequence[Union[str, os.PathLike]], mode: str = "RGB", image_size: Optional[int] = None,
                  desc: str = "images", report: FileReport = None,
                  allocate: Callable[[tuple], np.ndarray] = None) -> np.ndarray:
    """Decode `paths` into one uint8 array of shape (N, H, W, C).

    Args:
        mode: "RGB" (C = 3) or "L" (grey, C = 1); every image is converted to it.
        image_size: resize every image to (image_size, image_size) with bilinear
            filtering; None keeps the native size, which must then be the same for all.
        desc: what is being decoded, for the progress log lines.
        report: collects the conversions worth a word (16-bit images scaled to 8 bits); without one
            they are logged here, once.
        allocate: makes the (N, H, W, C) uint8 array the images are decoded into, once the first image
            gives H and W (default np.empty; the decode cache passes files on disk).
    Raises ConfigError naming every file that cannot be read, after trying them all.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    own_report = report is None
    report = FileReport() if own_report else report
    channels = 3 if mode == "RGB" else 1
    n = len(paths)
    if n == 0:
        side = image_size or 0
        return np.zeros((0, side, side, channels), dtype=np.uint8)
    step = math.ceil(n / 10) if n > PROGRESS_THRESHOLD else 0
    if step:
        log.info("Decoding %d %s ...", n, desc)
    out, problems = None, []
    for i, path in enumerate(paths):
        try:
            pixels = _read(path, mode, image_size, report)
        except UNREADABLE as err:
            problems.append((path, brief(err)))
            continue
        if out is None:
            # Allocate once from the first image: appending then stacking would need twice the memory.
            out = (allocate or _in_memory)((n, pixels.shape[0], pixels.shape[1], channels))
            first = path
        elif pixels.shape[:2] != out.shape[1:3]:
            raise ConfigError(
                f"Images differ in size: {first} is {out.shape[2]}x{out.shape[1]} but {path} is "
                f"{pixels.shape[1]}x{pixels.shape[0]}; set dataset.image_size=<pixels> to resize every image to one "
                "square size."
            )
        out[i] = pixels.reshape(out.shape[1:])
        if step and ((i + 1) % step == 0 or i + 1 == n):
            log.info("Decoded %d/%d %s (%d%%)", i + 1, n, desc, round(100 * (i + 1) / n))
    if problems:
        raise unreadable_error(problems)
    if own_report:
        report.log(f"decoding {desc}")
    return out
