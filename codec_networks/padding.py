"""CompressAI's hyperprior models need sizes divisible by 64 (four stride-2 layers in g_a, two in h_a)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int = 64) -> torch.Tensor:
    """Replicate-pad the bottom/right of a (N, C, H, W) batch up to a multiple (cheaper to code than zeros)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def pad_multiple_for(model: torch.nn.Module, requested: int) -> int:
    """The requested padding multiple, raised to what the model needs (`min_pad_multiple`: an MSP
    model's coarsest scale must keep at least one latent position)."""
    return math.lcm(requested, int(getattr(model, "min_pad_multiple", 1)))


def crop_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return x[..., :height, :width]
