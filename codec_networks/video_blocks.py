"""Building blocks of the adaptation-and-attention video codec (method 5).

`SplitAttentionDenseBlock` is the paper's block: ResNeSt split-attention units (radix branches, a
softmax over the branches per channel from globally pooled features) joined by DenseNet connections
(each unit sees the block input concatenated with every earlier unit's output), fused back to the
block width by a 1x1 convolution and added to the input. `ResidualBlock` (CompressAI's) is the plain
block it is ablated against. `ChannelScale` holds the decoder-side multiplicative parameters.
"""

from __future__ import annotations

import torch
from compressai.layers import ResidualBlock, conv1x1, conv3x3
from torch import nn


class SplitAttention(nn.Module):
    """ResNeSt's split-attention unit (cardinality 1): `radix` grouped 3x3 branches weighted per channel."""

    def __init__(self, in_channels: int, channels: int, radix: int = 2, reduction: int = 4):
        super().__init__()
        self.radix, self.channels = radix, channels
        self.branches = nn.Sequential(
            nn.Conv2d(in_channels, channels * radix, 3, padding=1, groups=radix if in_channels % radix == 0 else 1),
            nn.LeakyReLU(inplace=True),
        )
        hidden = max(channels // reduction, 8)
        self.attention = nn.Sequential(
            conv1x1(channels, hidden), nn.ReLU(inplace=True), conv1x1(hidden, channels * radix)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        splits = self.branches(x).view(b, self.radix, self.channels, h, w)
        pooled = splits.sum(1).mean((2, 3), keepdim=True)
        weights = self.attention(pooled).view(b, self.radix, self.channels, 1, 1).softmax(dim=1)
        return (weights * splits).sum(1)


class SplitAttentionDenseBlock(nn.Module):
    """`units` split-attention units with dense connections, each adding `growth` channels."""

    def __init__(self, channels: int, units: int = 2, growth: int | None = None, radix: int = 2):
        super().__init__()
        growth = growth or channels // 2
        self.units = nn.ModuleList(SplitAttention(channels + i * growth, growth, radix) for i in range(units))
        self.fuse = conv1x1(channels + units * growth, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for unit in self.units:
            features.append(unit(torch.cat(features, dim=1)))
        return x + self.fuse(torch.cat(features, dim=1))


def make_block(channels: int, attention: bool) -> nn.Module:
    return SplitAttentionDenseBlock(channels) if attention else ResidualBlock(channels, channels)


class ChannelScale(nn.Module):
    """One multiplicative factor per channel, 1.0 as trained. Not trained with the network (requires_grad
    off): the encoder overfits them per video and signals them (codec_networks/video_overfitting.py)."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1)


def refinement(in_channels: int, channels: int, out_channels: int, attention: bool, scales: bool) -> nn.Sequential:
    """Full-resolution network for motion compensation: conv, two blocks (each followed by its channel
    scales), conv; the last layer starts at zero so that the prediction starts as the warped frame."""
    layers = [conv3x3(in_channels, channels), nn.LeakyReLU(inplace=True)]
    for _ in range(2):
        layers += [make_block(channels, attention), ChannelScale(channels) if scales else nn.Identity()]
    last = conv3x3(channels, out_channels)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)
