"""Rate estimated from entropy-model likelihoods (training); real rates come from bitstream bytes."""

from __future__ import annotations

import math

import torch


def bits_from_likelihoods(likelihoods: dict[str, torch.Tensor]) -> torch.Tensor:
    """Total estimated bits, -sum(log2 p), over every latent of the batch."""
    return sum(torch.log(p).sum() for p in likelihoods.values()) / -math.log(2)
