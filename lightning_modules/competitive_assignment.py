"""The training objective of method 1 (arXiv 2406.12367): M filters compete for every sample.

Each sample is assigned to all filters fuzzily, a_j = softmax_j(-D_j / T), detached, and the loss is
Σ_j a_j·D_j. At high temperature every filter learns from every sample; as T is annealed towards 0 the
assignment becomes winner-takes-all, like simulated annealing, avoiding the instability of training on
min_j D_j from the start. Baselines: 'winner_takes_all' (T → 0 from the start) and 'independent'
(each sample trains the filter of its fixed cluster).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Strategy = Literal["competitive", "winner_takes_all", "independent"]


def assignment_weights(
    distortions: torch.Tensor,
    temperature: float,
    strategy: Strategy = "competitive",
    clusters: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, M) weights of each sample for each filter, without gradient."""
    distortions = distortions.detach()
    if strategy == "competitive":
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        return torch.softmax(-distortions / temperature, dim=1)
    if strategy == "winner_takes_all":
        return F.one_hot(distortions.argmin(dim=1), distortions.shape[1]).to(distortions.dtype)
    if strategy == "independent":
        if clusters is None:
            raise ValueError("the independent strategy needs each sample's fixed cluster index")
        return F.one_hot(clusters.long(), distortions.shape[1]).to(distortions.dtype)
    raise ValueError(f"strategy must be competitive, winner_takes_all or independent, got {strategy!r}")


def competitive_loss(
    distortions: torch.Tensor,
    temperature: float,
    strategy: Strategy = "competitive",
    clusters: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_j a_j·D_j averaged over the batch, and the weights a (B, M)."""
    weights = assignment_weights(distortions, temperature, strategy, clusters)
    return (weights * distortions).sum(dim=1).mean(), weights
