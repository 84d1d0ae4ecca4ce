"""Frozen features (`model.freeze=true`): every image embedded once through a pretrained backbone, kept on disk.

The detector and classifier are then small heads on the features (osal.models.network.build_network builds
them), still LightningModules behind the same contract, so every strategy runs unchanged. The features are
cached under `<cache_dir>/features/`, keyed by the backbone's weights, the input settings and the images'
bytes: a resumed run, and a second strategy on the same data, read them back instead of embedding again.
"""

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from osal.atomic import atomic_write
from osal.errors import ConfigError
from osal.folders import shown
from osal.models.pretrained import Backbone, load_backbone, read_checkpoint, source_of

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the embedding itself changes, so that no old file is read as new


@dataclass
class FrozenFeatures:
    """How images become features: the backbone `pretrained` names (a checkpoint of `encoder`, or torchvision's
    or timm's), embedded `batch_size` images at a time, kept under `cache_dir` (None: not kept)."""

    pretrained: str
    encoder: Optional[Callable[[], nn.Module]] = None
    channels: int = 3
    cache_dir: Optional[str] = None
    batch_size: int = 256

    def backbone(self) -> Backbone:
        return load_backbone(self.pretrained, self.encoder, self.channels)

    def embed(self, images: np.ndarray, mean: Sequence[float], std: Sequence[float],
              what: str = "images") -> np.ndarray:
        """(N, D) float32 features of uint8 (N, H, W, C) `images`; `mean`/`std` normalise them unless the weights
        bring their own normalisation. Read from the cache when it holds them."""
        backbone = self.backbone()
        mean, std = (backbone.mean, backbone.std) if backbone.mean is not None else (mean, std)
        path = None
        if self.cache_dir:
            key = feature_key(backbone, images, mean, std)
            path = os.path.join(self.cache_dir, "features", f"{key}.npy")
            cached = _read(path, len(images), backbone.out_dim)
            if cached is not None:
                log.info("frozen features of the %d %s read from %s", len(images), what, shown(path))
                return cached
        features = embed_images(backbone, images, mean, std, self.batch_size, what)
        if path is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, lambda f: np.save(f, features))
        return features


def frozen_features(freeze: bool = False, pretrained: Optional[str] = None,
                    encoder: Optional[Callable[[], nn.Module]] = None, channels: int = 3,
                    cache_dir: Optional[str] = None, batch_size: int = 256) -> Optional[FrozenFeatures]:
    """What the datamodule embeds its images with: None unless `model.freeze` (the config's factory)."""
    if not freeze:
        return None
    if not pretrained:
        raise ConfigError("model.freeze=true needs model.pretrained (frozen random weights give no useful features); "
                          "give a checkpoint file, a torchvision weights name or timm:<model>")
    return FrozenFeatures(str(pretrained), encoder, int(channels), cache_dir, int(batch_size))


def check_pretrained(pretrained: Optional[str], freeze: bool) -> None:
    """Before any data is read: model.freeze has weights, model.pretrained names a known source, and a checkpoint
    file exists and reads (one sentence each)."""
    if freeze:
        frozen_features(True, pretrained)
    if pretrained and source_of(str(pretrained)) == "file":
        read_checkpoint(os.path.expanduser(str(pretrained)))


def feature_key(backbone: Backbone, images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> str:
    """What the features depend on: the weights, the input settings and every byte of the images."""
    digest = hashlib.sha256()
    digest.update(repr((CACHE_VERSION, backbone.identity, backbone.size, [round(float(v), 6) for v in mean],
                        [round(float(v), 6) for v in std], tuple(images.shape), str(images.dtype))).encode())
    step = max(1, (1 << 26) // max(1, int(np.prod(images.shape[1:]))))  # about 64 MB a read
    for start in range(0, len(images), step):
        digest.update(np.ascontiguousarray(images[start:start + step]).data)
    return digest.hexdigest()[:24]


def _read(path: str, rows: int, width: int) -> Optional[np.ndarray]:
    """The cached features, or None when there are none (or a file of another shape: embedded again)."""
    if not os.path.isfile(path):
        return None
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        log.warning("%s does not read back; embedding again", path)
        return None
    if features.shape != (rows, width) or features.dtype != np.float32:
        log.warning("%s holds features of shape %s, not (%d, %d); embedding again", path, features.shape, rows, width)
        return None
    return features


def embed_images(backbone: Backbone, images: np.ndarray, mean: Sequence[float], std: Sequence[float],
                 batch_size: int = 256, what: str = "images") -> np.ndarray:
    """Run the backbone over `images` in eval mode, `batch_size` at a time, saying how far it got."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = backbone.encoder.to(device).eval()
    mean_t = torch.tensor([float(v) for v in mean], device=device).view(1, -1, 1, 1)
    std_t = torch.tensor([float(v) for v in std], device=device).view(1, -1, 1, 1)
    out = np.empty((len(images), backbone.out_dim), dtype=np.float32)
    started = last_said = time.perf_counter()
    log.info("embedding %d %s through the frozen backbone (%s)", len(images), what, backbone.identity)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(np.array(images[start:start + batch_size])).to(device)  # a writable copy
            x = chunk.permute(0, 3, 1, 2).float().div_(255.0)
            if x.shape[1] == 1 and backbone.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            if backbone.size and x.shape[-1] != backbone.size:
                x = F.interpolate(x, size=(backbone.size, backbone.size), mode="bilinear", align_corners=False)
            if mean_t.shape[1] == x.shape[1]:
                x = (x - mean_t) / std_t
            else:  # a grey dataset's one mean for three channels
                x = (x - mean_t.mean()) / std_t.mean()
            out[start:start + len(chunk)] = encoder(x).float().cpu().numpy()
            now = time.perf_counter()
            if now - last_said > 10:
                done = start + len(chunk)
                log.info("embedded %d of %d %s (%.0f/s)", done, len(images), what, done / (now - started))
                last_said = now
    log.info("embedded %d %s in %.1f s", len(images), what, time.perf_counter() - started)
    return out


class FeatureInput(nn.Module):
    """The encoder of a head on frozen features: the features pass through as they are."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = int(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
