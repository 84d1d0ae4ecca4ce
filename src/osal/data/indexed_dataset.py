"""A map-style dataset over in-memory images that also returns each example's global index."""

import numpy as np
import torch
from torch.utils.data import Dataset


class IndexedImageDataset(Dataset):
    """Yields (image, target, global index) for the given subset of a uint8 NCHW tensor.

    Returning the global index lets pool outputs scatter back without translating
    subset positions (the trap of pool-relative indices).
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray, indices: np.ndarray, transform):
        self.images = images
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.int64))
        if len(self.targets) != len(self.indices):
            raise ValueError(f"{len(self.indices)} indices but {len(self.targets)} targets")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        return self.transform(self.images[index]), self.targets[position], index


class IndexedBatches(IndexedImageDataset):
    """Whole batches (images, targets, global indices) for deterministic transforms.

    Scoring and testing need no per-image randomness, so the transform runs once per
    batch as one tensor operation instead of once per image (about 200x faster for
    MNIST-sized images on a CPU). Use with `DataLoader(batch_size=None)`.
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray, indices: np.ndarray, transform, batch_size: int):
        super().__init__(images, targets, indices, transform)
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.indices)

    def __getitem__(self, batch: int):
        window = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        index = self.indices[window]
        return self.transform(self.images[index]), self.targets[window], index
