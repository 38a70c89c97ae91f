"""NN-VVC's adapters (method 3): the intra human adapter (IHA), which refines the learned codec's
reconstruction into the conventional codec's reference picture, and the inter machine adapter (IMA),
which post-filters the conventionally decoded inter frames for the task.

Both are this network: an encoder of three stride-2 levels (3 -> 64 -> 64 -> 64 channels), three
residual blocks with PReLU at each level, a decoder mirroring it with 1x1 lateral skips from the
encoder level of the same size, and a global residual (output = input + correction; the correction's
last layer starts at zero, so an untrained adapter is the identity). With `conditioned`, two constant
planes enter with the image: the QP (qp / qp_max) and the resolution (log2 of the pixel count / 24).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from codec_networks.padding import crop_to, pad_to_multiple

LEVELS = 3


class PReLUResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Adapter(nn.Module):
    def __init__(self, channels: int = 64, blocks: int = 3, conditioned: bool = False, qp_max: float = 51.0):
        super().__init__()
        self.conditioned, self.qp_max = conditioned, qp_max
        inputs = 3 + 2 * conditioned
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(inputs if i == 0 else channels, channels, 3, stride=2, padding=1),
                nn.PReLU(channels),
                *(PReLUResidualBlock(channels) for _ in range(blocks)),
            )
            for i in range(LEVELS)
        )
        self.lateral = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(LEVELS - 1))
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
                nn.PReLU(channels),
                *(PReLUResidualBlock(channels) for _ in range(blocks)),
            )
            for _ in range(LEVELS - 1)
        )
        self.out = nn.ConvTranspose2d(channels, 3, 4, stride=2, padding=1)
        nn.init.zeros_(self.out.weight)  # the identity until trained
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, qp: float | torch.Tensor | None = None) -> torch.Tensor:
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, 2**LEVELS)
        h = padded
        if self.conditioned:
            if qp is None:
                raise ValueError("a conditioned adapter needs the QP")
            qp = torch.as_tensor(qp, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1) / self.qp_max
            size = torch.full_like(qp, math.log2(height * width) / 24)
            planes = torch.cat([qp, size], dim=1).expand(x.shape[0], 2, *padded.shape[-2:])
            h = torch.cat([padded, planes], dim=1)
        skips = []
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up, lateral in zip(self.up, reversed(self.lateral)):
            h = up(h) + lateral(skips.pop())
        return x + crop_to(self.out(h), height, width)
