"""The one shape every dataset source returns."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class ImageArrays:
    """A whole dataset decoded into memory.

    Images are uint8 arrays of shape (N, H, W, C) (C is 1 for grey, 3 for colour);
    labels are int64 class indices into `class_names`, whose order is the dataset's
    class order (the first K classes are the known ones).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4:
                raise ValueError(f"{split}_images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
            if len(images) != len(labels):
                raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
        self.train_labels = np.asarray(self.train_labels, dtype=np.int64)
        self.test_labels = np.asarray(self.test_labels, dtype=np.int64)
        self.class_names = [str(n) for n in self.class_names]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        """(H, W, C) of every image."""
        return tuple(self.train_images.shape[1:])


class ImageSource(Protocol):
    """What `osal.data.split.split_open_set` loads from (for type hints only): any object whose `load()`
    returns ImageArrays."""

    def load(self) -> ImageArrays: ...
