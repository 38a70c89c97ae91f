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
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.PReLU(channels),
                nn.Conv2d(channels, channels, 3, padding=1),
            )
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


class FilterBank(nn.Module):
    """M independently initialised QP-conditioned filters and the prior of the per-block choices.

    Choice 0 is "no filter", choice j ≥ 1 is filter j-1. `usage` counts how often each choice won on
    validation blocks (Laplace-smoothed); encoder and decoder both code the per-block indices against it.
    """

    def __init__(self, filters: int = 4, channels: int = 32, blocks: int = 4, qp_max: float = 63.0):
        super().__init__()
        if filters < 1:
            raise ValueError(f"a filter bank needs at least one filter, got {filters}")
        self.filters = nn.ModuleList(QPConditionedFilter(channels, blocks, qp_max) for _ in range(filters))
        self.register_buffer("usage", torch.ones(filters + 1))

    def __len__(self) -> int:
        return len(self.filters)

    def forward(self, decoded: torch.Tensor, qp: torch.Tensor | float) -> torch.Tensor:
        """(B, M, 3, H, W): every filter's output."""
        return torch.stack([f(decoded, qp) for f in self.filters], dim=1)

    def choice_pmf(self) -> torch.Tensor:
        return self.usage / self.usage.sum()
