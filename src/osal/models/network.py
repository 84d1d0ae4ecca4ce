"""Encoder + linear head; the head may pass through a low-dimensional bottleneck."""

from typing import Any, Callable, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from osal.errors import ConfigError
from osal.models.frozen import FeatureInput
from osal.models.pretrained import PretrainedEncoder, load_backbone


class Network(nn.Module):
    """`encoder` -> [dropout] -> [Linear(d -> bottleneck_dim)] -> Linear(-> num_outputs).

    `bottleneck_dim: 2` reproduces the authors' published head (512 -> 2 -> C).
    `features` are the penultimate activations (the bottleneck output when there is one).
    """

    def __init__(self, encoder: nn.Module, num_outputs: int, bottleneck_dim: Optional[int] = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        dim = encoder.out_dim
        self.bottleneck = nn.Linear(dim, bottleneck_dim) if bottleneck_dim else nn.Identity()
        self.head = nn.Linear(bottleneck_dim or dim, num_outputs)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, logits)."""
        features = self.bottleneck(self.dropout(self.encoder(x)))
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[1]

    def mc_dropout_logits(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """(samples, B, C) logits with the head's dropout forced on (Gal et al.'s MC dropout).

        The encoder runs once and stays in whatever mode the caller set (eval for BALD, so
        BatchNorm keeps its running statistics); only the dropout before the head is sampled.
        """
        p = self.dropout.p if isinstance(self.dropout, nn.Dropout) else 0.0
        if p == 0.0:
            raise ValueError("MC dropout needs model.dropout > 0 (BALD's config sets it)")
        encoded = self.encoder(x)
        return torch.stack([self.head(self.bottleneck(nn.functional.dropout(encoded, p, training=True)))
                            for _ in range(samples)])


def build_network(encoder: Callable[[], nn.Module], num_outputs: int, bottleneck_dim: Optional[int] = None,
                  dropout: float = 0.0, compile: bool = False,
                  compile_options: Optional[Mapping[str, Any]] = None, channels_last: Optional[bool] = None,
                  pretrained: Optional[str] = None, freeze: bool = False,
                  input_mean: Optional[Sequence[float]] = None, input_std: Optional[Sequence[float]] = None) -> Network:
    """`encoder` is a zero-argument factory (a Hydra partial), so every call builds fresh weights.

    pretrained: the encoder starts from these weights (osal.models.pretrained: a checkpoint of `encoder`, a
    torchvision weights name, timm:<name>), fed images normalised with `input_mean`/`input_std` (the dataset's),
    resized and normalised as the weights expect. freeze: the network is a head on the frozen backbone's
    features (osal.models.frozen), which the datamodule computes once.

    channels_last: the memory format the network trains in (True, False, or None: channels_last on CUDA only);
    the module reads it as `network.channels_last` when its fit starts.

    compile: wrap the network's forward in `torch.compile` (in place: the module type and its
    state-dict keys stay the same); `compile_options` are its keyword arguments (mode, backend, ...).
    Training calls the compiled forward; inference reads features through `forward_features`, eagerly.
    """
    if freeze:  # a head on features: the datamodule embedded the images once through the frozen backbone
        if not pretrained:
            raise ConfigError("model.freeze=true needs model.pretrained (frozen random weights give no useful "
                              "features); give a checkpoint file, a torchvision weights name or timm:<model>")
        width = load_backbone(pretrained, encoder, _channels_of(encoder)).out_dim
        network = Network(FeatureInput(width), num_outputs, bottleneck_dim=bottleneck_dim, dropout=dropout)
        network.channels_last = False  # features are (B, D): no memory format to choose
    else:
        body = (PretrainedEncoder(load_backbone(pretrained, encoder, _channels_of(encoder)), input_mean, input_std)
                if pretrained else encoder())
        network = Network(body, num_outputs, bottleneck_dim=bottleneck_dim, dropout=dropout)
        network.channels_last = channels_last
    if compile:
        network.compile(**dict(compile_options or {}))
    return network


def _channels_of(encoder: Callable[[], nn.Module]) -> int:
    """The data's channels, as the encoder factory was configured with them."""
    return int(getattr(encoder, "keywords", {}).get("in_channels", 3))


class OneVsAllNetwork(nn.Module):
    """A Network with EOAL's one-vs-all head beside its own: K bias-free binary classifiers on the features.

    `forward` gives the network's logits (what training and testing read); `forward_features` gives the
    features and, for the query, the network's logits followed by the head's 2K outputs (K "not class k"
    columns, then K "class k" columns, the official layout).
    """

    def __init__(self, network: Network, num_known: int) -> None:
        super().__init__()
        self.network = network
        self.one_vs_all = nn.Linear(network.head.in_features, 2 * num_known, bias=False)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features, the network's logits, the one-vs-all logits)."""
        features, logits = self.network.forward_features(x)
        return features, logits, self.one_vs_all(features)

    @property
    def channels_last(self) -> Optional[bool]:
        return getattr(self.network, "channels_last", None)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits, one_vs_all = self.heads(x)
        return features, torch.cat([logits, one_vs_all], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
