"""Post-filters that restore conventionally decoded images for machines (methods 1 and 9).

A small residual CNN conditioned on the codec's QP: a constant plane qp/qp_max is concatenated to the
decoded image, and the network predicts a correction added to it (global residual), so an untrained
filter starts close to the identity.
"""
from __future__ import annotations

import torch
from torch import nn


class QPConditionedFilter(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 4, qp_max: float = 63.0):
        super().__init__()
        self.qp_max = qp_max
        self.head = nn.Conv2d(4, channels, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels), nn.Conv2d(channels, channels, 3, padding=1))
            for _ in range(blocks)
        )
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # starts as the identity filter
        nn.init.zeros_(self.tail.bias)

    def forward(self, decoded: torch.Tensor, qp: torch.Tensor | float) -> torch.Tensor:
        qp = torch.as_tensor(qp, dtype=decoded.dtype, device=decoded.device).reshape(-1, 1, 1, 1)
        plane = (qp / self.qp_max).expand(decoded.shape[0], 1, *decoded.shape[-2:])
        features = self.head(torch.cat([decoded, plane], dim=1))
        for block in self.body:
            features = features + block(features)
        return decoded + self.tail(features)
