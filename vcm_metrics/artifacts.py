"""A checkerboard-artifact score: how much of the coding error's energy sits at the spatial
frequencies of the decoder's stride-2 upsamplings (periods 2, 4, 8, 16 px).

Transposed-convolution decoders leave periodic patterns with exactly those periods. The score is the
share of the error spectrum (DC excluded) on the bins k·H/p, l·W/p (p a period, not both zero): white
noise scores about the share of such bins (a few percent at 256²); a checkerboard scores near 1.
"""

from __future__ import annotations

import torch

PERIODS = (2, 4, 8, 16)


def _period_mask(height: int, width: int, periods: tuple[int, ...]) -> torch.Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool)
    for p in periods:
        if height % p == 0 and width % p == 0:
            mask[:: height // p, :: width // p] = True
    mask[0, 0] = False
    return mask


def checkerboard_score(x_hat: torch.Tensor, x: torch.Tensor, periods: tuple[int, ...] = PERIODS) -> torch.Tensor:
    """Per image of a (N, C, H, W) batch; H and W are cropped to a multiple of the largest period."""
    p = max(periods)
    h, w = (x.shape[-2] // p) * p, (x.shape[-1] // p) * p
    if h == 0 or w == 0:
        raise ValueError(f"checkerboard_score needs images of at least {p}×{p} px")
    error = (x_hat - x)[..., :h, :w].float()
    error = error - error.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(error).abs().pow(2).sum(1)  # (N, H, W), summed over channels
    mask = _period_mask(h, w, periods).to(power.device)
    total = power.flatten(1).sum(1) - power[:, 0, 0]
    return power[:, mask].sum(1) / total.clamp_min(1e-12)
