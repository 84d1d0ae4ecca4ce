"""A map-style dataset over in-memory images that also returns each example's global index."""

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from osal.data.image_rows import ImageRows


class IndexedImageDataset(Dataset):
    """Yields (image, target, global index) for the given subset of a uint8 NCHW tensor.

    Returning the global index lets pool outputs scatter back without translating
    subset positions (the trap of pool-relative indices).
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray, indices: np.ndarray,
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.images = images
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.int64))
        if len(self.targets) != len(self.indices):
            raise ValueError(f"{len(self.indices)} indices but {len(self.targets)} targets")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = self.indices[position]
        return self.transform(self.images[index]), self.targets[position], index


class IndexedBatches(IndexedImageDataset):
    """Whole batches (images, targets, global indices) for deterministic transforms.

    Scoring and testing need no per-image randomness, so the transform runs once per
    batch as one tensor operation instead of once per image (about 200x faster for
    MNIST-sized images on a CPU). Use with `DataLoader(batch_size=None)`.
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray, indices: np.ndarray,
                 transform: Callable[[torch.Tensor], torch.Tensor], batch_size: int) -> None:
        super().__init__(images, targets, indices, transform)
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.indices)

    def __getitem__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        window = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        index = self.indices[window]
        return self.transform(self.images[index]), self.targets[window], index


class IndexedTargets(Dataset):
    """(None, targets, global indices) of a batch of positions: the images are gathered after transfer.

    The batched pipeline keeps every image in one tensor (on the GPU when training
    there); a loader over this dataset only shuffles and batches indices, through
    `__getitems__`, so no per-example Python runs. Use with `collate_fn=keep_batch`;
    `PoolDataModule.on_after_batch_transfer` fills in the augmented images.
    """

    def __init__(self, targets: np.ndarray, indices: np.ndarray) -> None:
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.int64))
        if len(self.targets) != len(self.indices):
            raise ValueError(f"{len(self.indices)} indices but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[None, torch.Tensor, torch.Tensor]:
        return self.__getitems__([position])

    def __getitems__(self, positions: Sequence[int]) -> tuple[None, torch.Tensor, torch.Tensor]:
        positions = torch.as_tensor(positions, dtype=torch.int64)
        return None, self.targets[positions], self.indices[positions]


def keep_batch(batch: tuple) -> tuple:
    """collate_fn for datasets whose `__getitems__` already returns a whole batch."""
    return batch


class IndexedRows(IndexedTargets):
    """(raw uint8 images, targets, global indices) of a batch of positions: the batched pipeline's training
    batches when the images are read a batch at a time (osal.data.image_rows) rather than held on the device.
    Use with `collate_fn=keep_batch`; `PoolDataModule.on_after_batch_transfer` augments them."""

    def __init__(self, images: "ImageRows", targets: np.ndarray, indices: np.ndarray) -> None:
        super().__init__(targets, indices)
        self.images = images

    def __getitems__(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _, targets, indices = super().__getitems__(positions)
        return self.images[indices], targets, indices
