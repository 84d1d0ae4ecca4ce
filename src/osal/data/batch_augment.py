"""The paper's training augmentation applied to a whole uint8 batch at once, on whatever device it is on.

Per-image torchvision transforms cost tens of microseconds of Python per image per
epoch; on a GPU they also keep the images on the CPU and feed the device through
worker processes. Here the batch is one tensor: a random crop with zero padding,
a horizontal flip and a rotation are each one indexing or sampling call with a
different random draw per image, taken from the generator passed in.

Same distribution as `transforms.train_transform` (RandomCrop(padding), RandomHorizontalFlip,
RandomRotation with nearest interpolation and zero fill, then ToDtype + Normalize); not the
same random stream.
"""

import math
from typing import Sequence

import torch
import torch.nn.functional as F


class BatchAugment:
    """Callable: uint8 (B, C, H, W) -> normalised float32 (B, C, H, W), augmented per image.

    Args:
        mean, std: per-channel normalisation in [0, 1] units.
        crop_padding: pad by this many zero pixels, then crop back to H x W at a random offset.
        hflip: flip half of the images left-right.
        rotation: rotate each image by an angle drawn uniformly from [-rotation, rotation] degrees.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], crop_padding: int = 0, hflip: bool = False,
                 rotation: float = 0.0) -> None:
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding, self.hflip, self.rotation = int(crop_padding), bool(hflip), float(rotation)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = images
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.hflip:
            flip = torch.rand(len(x), device=x.device, generator=generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        x = x.float().div_(255.0)
        if self.rotation:
            angles = (torch.rand(len(x), device=x.device, generator=generator) * 2 - 1) * self.rotation
            x = rotate(x, angles)
        if self.mean.device != x.device:
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return (x - self.mean) / self.std


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image padded by `padding` zeros on every side, then an H x W window at its own random offset."""
    b, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (b,), device=images.device, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (b,), device=images.device, generator=generator)
    rows = (top.view(b, 1) + torch.arange(h, device=images.device)).view(b, 1, h, 1)
    cols = (left.view(b, 1) + torch.arange(w, device=images.device)).view(b, 1, 1, w)
    batch = torch.arange(b, device=images.device).view(b, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each float image counter-clockwise by its angle about the centre (nearest pixel, zero fill).

    torchvision's `rotate` convention: the same output as `v2.functional.rotate(image, angle)`
    for square images, up to pixels whose source lies exactly between two pixels.
    """
    b, _, h, w = images.shape
    radians = degrees.to(images.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # output -> input coordinates in normalised [-1, 1] units: rotation by -angle in image (y-down) axes
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], dim=1),
                         torch.stack([sin * w / h, cos, zero], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)
