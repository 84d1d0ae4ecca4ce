"""MQNet's self-supervised network: CSI (Tack et al., NeurIPS 2020), contrastive learning with rotations as shifts.

MQNet (Park et al., NeurIPS 2022; official code github kaist-dmlab/MQNet at 77b4b5c, methods/methods_utils/
simclr_CSI.py, nets/base_model.py) measures how much an unlabeled example looks like the labeled known ones by
the cosine similarity of CSI features, learned without labels on every training image.
"""

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from osal.models.frozen import FeatureInput
from osal.models.modules import ClassifierModule, NetworkFactory, OptimizerFactory, SchedulerFactory
from osal.models.network import Network

ROTATIONS = 4  # the shifts: rotations by 0, 90, 180 and 270 degrees


class ContrastiveShiftNetwork(nn.Module):
    """A Network's encoder with CSI's two heads on its features: a SimCLR projection (d -> d -> 128) and a
    4-way rotation classifier (the official BaseModel's simclr_layer and shift_cls_layer).

    `forward_features` gives (SimCLR projection, rotation logits): the projection is what MQNet's purity reads.
    The Network's own head is not trained (the official linear head is fit apart, for evaluation only).

    On frozen features (model.freeze=true: the encoder is a FeatureInput) no image can be rotated or augmented:
    the pretrained backbone's features stand in for CSI's projection, and nothing is trained (MQNet's purity
    is then the cosine similarity in the backbone's feature space).
    """

    def __init__(self, network: Network, simclr_dim: int = 128) -> None:
        super().__init__()
        self.network = network
        dim = network.head.in_features
        self.simclr = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, int(simclr_dim)))
        self.shift = nn.Linear(dim, ROTATIONS)

    @property
    def channels_last(self) -> Optional[bool]:
        return getattr(self.network, "channels_last", None)

    @property
    def on_frozen_features(self) -> bool:
        return isinstance(self.network.encoder, FeatureInput)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.network.forward_features(x)[0]
        if self.on_frozen_features:
            return features, self.shift(features)
        return self.simclr(features), self.shift(features)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x)[1]


def nt_xent(similarity: torch.Tensor, temperature: float = 0.5, eps: float = 1e-8) -> torch.Tensor:
    """The official NT_xent (chunk 2): rows i and i + B' / 2 are positives, every other row a negative."""
    half = similarity.size(0) // 2
    eye = torch.eye(similarity.size(0), device=similarity.device, dtype=similarity.dtype)
    exp = torch.exp(similarity / temperature) * (1 - eye)
    losses = -torch.log(exp / (exp.sum(dim=1, keepdim=True) + eps) + eps)
    return (losses[:half, half:].diag().sum() + losses[half:, :half].diag().sum()) / (2 * half)


class SimCLRAugment:
    """The official SimCLR augmentation of a batch, as tensor operations on its device: colour jitter
    (brightness, contrast, saturation 0.4, p = 0.8), grayscale (p = 0.2) and a random resized crop (scale
    0.08..1, aspect 3/4..4/3) back to the image's size.

    Departures (docs/design.md): the images arrive normalised (the official layers see [0, 1] pixels), so
    brightness scales and contrast and saturation blend around each image's mean and grey level of the
    normalised values; hue is not jittered. Single-channel images skip saturation and grayscale.
    """

    def __init__(self, jitter: float = 0.4, jitter_p: float = 0.8, gray_p: float = 0.2,
                 min_scale: float = 0.08) -> None:
        self.jitter, self.jitter_p, self.gray_p, self.min_scale = jitter, jitter_p, gray_p, min_scale

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, channels = x.shape[0], x.shape[1]

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return low + (high - low) * torch.rand((n, *shape), generator=generator, device=x.device, dtype=x.dtype)

        def chosen(p: float) -> torch.Tensor:
            return (torch.rand(n, generator=generator, device=x.device) < p).view(n, 1, 1, 1)

        def grey(images: torch.Tensor) -> torch.Tensor:
            weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            return (images * weights).sum(dim=1, keepdim=True).expand_as(images)

        low, high = 1 - self.jitter, 1 + self.jitter
        jittered = x * uniform(low, high, 1, 1, 1)
        mean = jittered.mean(dim=(1, 2, 3), keepdim=True)
        jittered = mean + (jittered - mean) * uniform(low, high, 1, 1, 1)
        if channels == 3:
            level = grey(jittered)
            jittered = level + (jittered - level) * uniform(low, high, 1, 1, 1)
        x = torch.where(chosen(self.jitter_p), jittered, x)
        if channels == 3:
            x = torch.where(chosen(self.gray_p), grey(x), x)
        return self.resized_crop(x, generator)

    def resized_crop(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        rand = torch.rand((n, 4), generator=generator, device=x.device, dtype=x.dtype)
        area = self.min_scale + (1 - self.min_scale) * rand[:, 0]
        log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * rand[:, 1]
        ratio = torch.exp(log_ratio)
        width = torch.sqrt(area * ratio).clamp(max=1.0)
        height = torch.sqrt(area / ratio).clamp(max=1.0)
        # the crop's centre, so that the crop lies inside the image (coordinates in [-1, 1])
        centre_x = (1 - width) * (2 * rand[:, 2] - 1)
        centre_y = (1 - height) * (2 * rand[:, 3] - 1)
        theta = torch.zeros((n, 2, 3), device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = width, centre_x
        theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class ContrastiveShiftModule(ClassifierModule):
    """MQNet's CSI network as a LightningModule: trained without labels on whatever the fit's loader gives
    (strategy=mqnet: the labeled, invalid and unlabeled examples, i.e. every training image, as the official
    self_sup_train), by the official csi_train_epoch's loss:

    * each image twice, each copy flipped with probability 1/2, each copy in its four rotations (8B images);
    * the SimCLR augmentation of all 8B (SimCLRAugment);
    * NT-Xent (temperature 0.5) on the normalised SimCLR projections, the two copies of an image in the same
      rotation being positives, plus cross-entropy of the rotation head on the rotation (the shift).

    The fit's batches arrive augmented by the datamodule (crop and flip, as the official loader's training
    transform). Departures (docs/design.md): the project's optimizer, scheduler and epochs (the official: LARS
    on SGD lr 0.1 with 10 warm-up epochs and cosine decay over 1,000 epochs, batch 32); SimCLRAugment's.
    """

    role = "detector"
    relative_step_cost = 2 * ROTATIONS  # a step trains on 8 views of each image (osal.loop.protocol_estimate)

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, temperature: float = 0.5,
                 simclr_dim: int = 128) -> None:
        super().__init__(num_known, network, optimizer, scheduler, temperature)
        if int(simclr_dim) < 1:
            raise ValueError(f"simclr_dim must be at least 1, got {simclr_dim}")
        self.net = ContrastiveShiftNetwork(self.net, simclr_dim)
        self.augment = SimCLRAugment()
        self._generator = None

    @property
    def num_outputs(self) -> int:
        return self.num_known  # the encoder's own head (unused): its width does not matter

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self._generator = None

    def generator(self, device: torch.device) -> torch.Generator:
        # seeded from the fit's seed (the loop seeds every fit): the same fit draws the same views
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(torch.initial_seed() % (2 ** 63))
        return self._generator

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the 8B augmented views, their rotation labels), in the official order: copy 1 in rotations 0..3,
        then copy 2 in rotations 0..3."""
        generator = self.generator(x.device)
        copies = []
        for _ in range(2):
            flip = (torch.rand(len(x), generator=generator, device=x.device) < 0.5).view(-1, 1, 1, 1)
            copy = torch.where(flip, x.flip(3), x)
            copies.append(torch.cat([torch.rot90(copy, k, (2, 3)) for k in range(ROTATIONS)]))
        pair = self.augment(torch.cat(copies), generator)
        rotations = torch.arange(ROTATIONS, device=x.device).repeat_interleave(len(x)).repeat(2)
        return pair.contiguous(memory_format=self._memory_format), rotations

    def batch_loss(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if self.net.on_frozen_features:  # the backbone's features are the projection: nothing to learn
            return self.net.shift.weight.sum() * 0.0
        pair, rotations = self.views(x)
        projection, shift = self.net.heads(pair)
        projection = F.normalize(projection.float(), dim=1)
        return nt_xent(projection @ projection.t(), self.temperature) + F.cross_entropy(shift.float(), rotations)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        raise NotImplementedError("the CSI network classifies rotations, not classes: test the classifier")
