"""A small CNN for 8x8 (digits) and 28x28 (MNIST) inputs, cheap enough for CPU tests and demos."""

import torch
import torch.nn as nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNNEncoder(nn.Module):
    """Three conv blocks with two 2x2 poolings, then global average pooling (any size >= 4x4)."""

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(_block(in_channels, width), nn.MaxPool2d(2),
                                  _block(width, 2 * width), nn.MaxPool2d(2),
                                  _block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1))
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)
