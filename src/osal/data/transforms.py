"""Image transforms built from the dataset config (uint8 CHW tensors in, float out)."""

from typing import Sequence

import torch
from torchvision.transforms import v2


def _to_float(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def test_transform(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Scale to [0, 1] and normalise: what the test set and the pool are scored with."""
    return v2.Compose(_to_float(mean, std))


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float], crop_padding: int = 0,
                    hflip: bool = False, rotation: float = 0.0) -> v2.Compose:
    """The paper's augmentation for 32x32 data (crop pad 4, flip, rotate 15) when enabled in config."""
    steps = []
    if crop_padding:
        steps.append(v2.RandomCrop(image_size, padding=crop_padding))
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if rotation:
        steps.append(v2.RandomRotation(rotation))
    return v2.Compose(steps + _to_float(mean, std))
