"""The likelihood of given values under a GaussianConditional's discretised Gaussians.

CompressAI exposes it only through GaussianConditional.forward(), which first re-quantises its input
(noise or rounding); latent overfitting needs it at values that a quantisation surrogate (SGA, STE)
already produced, with gradients. Same formula and bounds as CompressAI's."""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import GaussianConditional


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))  # erfc keeps precision in the tails


def gaussian_likelihood(
    gc: GaussianConditional, values: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None
) -> torch.Tensor:
    """P(round(v) = values) per element, for the bin [values - 1/2, values + 1/2] around the mean."""
    scales = gc.lower_bound_scale(scales)
    distance = (values - means).abs() if means is not None else values.abs()
    likelihood = _cdf((0.5 - distance) / scales) - _cdf((-0.5 - distance) / scales)
    return gc.likelihood_lower_bound(likelihood) if gc.use_likelihood_bound else likelihood
