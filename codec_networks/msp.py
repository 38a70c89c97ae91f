"""Multi-scale progressive (MSP) probability model (method 4, arXiv 2210.04112).

The latent y is split into scales by 2x subsampling: scale s+1 keeps the positions [1::2, 1::2] of
scale s. The coarsest scale is coded with a factorised model (an EntropyBottleneck). Each finer scale
is then coded in a fixed number of sub-steps per 2x2 block: its [1, 1] position is already known (it is
the coarser scale), and each sub-step codes some of the other three positions with a Gaussian whose
mean and scale a small CNN predicts from everything decoded so far at that scale. The CNN sees the
scale's grid with unknown positions zeroed plus a mask of the known ones, so one network evaluation
serves every block of the image: decoding takes 1 + (levels - 1) * substeps network evaluations plus
the synthesis, whatever the image size, where a serial context model (mbt2018) needs one per latent
position. One CNN per sub-step is shared by all scales (the statistics of a subsampled latent are
those of the latent), so the parameter count does not grow with the number of levels.

The coded symbols are round(y - mean) as in CompressAI's mean-scale models, coded by CompressAI's
GaussianConditional and the codec's shared range coder; the encoder computes every prediction from the
same quantised values the decoder will have, in the same order, so both sides select identical CDFs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv
from torch import nn

from codec_networks.gaussian import gaussian_likelihood
from vcmlab.errors import InputError

# which positions of each 2x2 block (row parity, column parity) every sub-step codes; (1, 1) is the
# coarser scale. The diagonal (0, 0) goes first: its four diagonal neighbours are all known.
SUBSTEPS = {
    1: (((0, 0), (0, 1), (1, 0)),),
    2: (((0, 0),), ((0, 1), (1, 0))),
    3: (((0, 0),), ((0, 1),), ((1, 0),)),
}

Quantize = Callable[[torch.Tensor], torch.Tensor]  # differentiable stand-in for round()


def ste_round(v: torch.Tensor) -> torch.Tensor:
    return v + (torch.round(v) - v).detach()


def split_scales(y: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[y, y[..., 1::2, 1::2], ...], finest first: `levels` scales."""
    scales = [y]
    for _ in range(levels - 1):
        scales.append(scales[-1][..., 1::2, 1::2])
    return scales


def parity_mask(height: int, width: int, positions, device) -> torch.Tensor:
    """Boolean (height, width) mask of the block positions (row parity, column parity) listed."""
    rows = torch.arange(height, device=device)[:, None] % 2
    cols = torch.arange(width, device=device)[None, :] % 2
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    for r, c in positions:
        mask |= (rows == r) & (cols == c)
    return mask


class ContextPredictor(nn.Module):
    """Gaussian (scale, mean) for every position of a scale from its partly decoded grid and the mask
    of the decoded positions."""

    def __init__(self, channels: int, hidden: int, kernel_size: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, hidden, kernel_size, padding=kernel_size // 2),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, 2 * channels, 1),
        )

    def forward(self, canvas: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = known.to(canvas.dtype).expand(canvas.shape[0], 1, *known.shape)
        scales, means = self.net(torch.cat([canvas, mask], dim=1)).chunk(2, dim=1)
        return scales, means


class MultiScaleProgressive(CompressionModel):
    """Ballé-style analysis/synthesis (as CompressAI's FactorizedPrior, N and M channels, 16x down)
    with the MSP probability model. `levels` scales (3-4 in the paper), `substeps` sub-steps per 2x2
    block (1-3), context CNNs of `hidden` channels and a first kernel of `kernel_size`."""

    def __init__(
        self, N: int = 128, M: int = 192, levels: int = 3, substeps: int = 2, hidden: int = 96, kernel_size: int = 3
    ):
        super().__init__()
        if substeps not in SUBSTEPS:
            raise ValueError(f"substeps must be one of {sorted(SUBSTEPS)}, got {substeps}")
        if levels < 2:
            raise ValueError(f"an MSP model needs at least 2 scales, got levels={levels}")
        self.levels, self.substeps = levels, substeps
        self.g_a = nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
        )  # fmt: skip
        self.entropy_bottleneck = EntropyBottleneck(M)
        self.gaussian_conditional = GaussianConditional(None)
        self.context = nn.ModuleList(ContextPredictor(M, hidden, kernel_size) for _ in range(substeps))

    @property
    def downsampling_factor(self) -> int:
        return 2**4

    @property
    def min_pad_multiple(self) -> int:
        """Padding to this multiple halves every scale exactly, down to a coarsest side of >= 1."""
        return self.downsampling_factor * 2 ** (self.levels - 1)

    def scale_shapes(self, shape) -> list[tuple[int, int]]:
        """The grid of every scale, finest first, for a latent of this (height, width)."""
        shapes = [tuple(int(n) for n in shape)]
        for _ in range(self.levels - 1):
            shapes.append((shapes[-1][0] // 2, shapes[-1][1] // 2))
        if min(shapes[-1]) < 1:
            least = self.downsampling_factor * 2 ** (self.levels - 1)
            raise InputError(
                f"a {shape[1]}x{shape[0]} latent is too small for {self.levels} MSP scales: the coded image "
                f"needs at least {least} pixels per side (pad it, e.g. codec.pad_multiple={least})"
            )
        return shapes

    # -- the progressive walk, shared by training, latent overfitting, compress and decompress ---------

    def _walk(self, coarse_hat: torch.Tensor, shapes: list[tuple[int, int]], code) -> torch.Tensor:
        """From the decoded coarsest scale to the decoded finest. code(level, scales, means, mask)
        codes the scale's positions under `mask` with the Gaussians given and returns their decoded
        values, (B, C, n)."""
        hat = coarse_hat
        for level in reversed(range(len(shapes) - 1)):
            height, width = shapes[level]
            canvas = hat.new_zeros(hat.shape[0], hat.shape[1], height, width)
            canvas[..., 1::2, 1::2] = hat
            known = parity_mask(height, width, [(1, 1)], hat.device)
            for predictor, positions in zip(self.context, SUBSTEPS[self.substeps]):
                step = parity_mask(height, width, positions, hat.device)
                sigma, mu = predictor(canvas, known)
                decoded = code(level, sigma[..., step], mu[..., step], step)
                canvas = canvas.clone()  # autograd: the predictor above saw the canvas before this write
                canvas[..., step] = decoded
                known = known | step
            hat = canvas
        return hat

    def _relaxed(self, y: torch.Tensor, quantize: Quantize, noisy_rate: bool, exact_rate: bool):
        """(y_hat, likelihoods of every scale) with `quantize` standing in for round() in the values that
        feed the contexts and the synthesis. The rate is of y + uniform noise (CompressAI's training
        rate) if `noisy_rate`, of the rounded values if `exact_rate`, else of the surrogate's values
        (latent overfitting; its coarsest scale, 1/4**(levels-1) of the symbols, keeps the noise)."""
        shapes = self.scale_shapes(y.shape[-2:])  # also refuses a latent too small for the scales
        scales = split_scales(y, self.levels)
        _, coarse_likelihood = self.entropy_bottleneck(scales[-1], training=not exact_rate)
        medians = self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
        coarse_hat = medians + quantize(scales[-1] - medians)
        likelihoods = [coarse_likelihood.flatten(1)]
        gc = self.gaussian_conditional

        def code(level, sigma, mu, mask):
            values = scales[level][..., mask]
            hat = mu + quantize(values - mu)
            if noisy_rate or exact_rate:
                likelihood = gc(values, sigma, mu, training=noisy_rate)[1]
            else:
                likelihood = gaussian_likelihood(gc, hat, sigma, mu)
            likelihoods.append(likelihood.flatten(1))
            return hat

        y_hat = self._walk(coarse_hat, shapes, code)
        return y_hat, torch.cat(likelihoods, dim=1)

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        if self.training:  # rate of y + noise; contexts and synthesis see straight-through rounding
            y_hat, likelihoods = self._relaxed(y, ste_round, noisy_rate=True, exact_rate=False)
        else:
            y_hat, likelihoods = self._relaxed(y, torch.round, noisy_rate=False, exact_rate=True)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": likelihoods}}

    def relaxed_forward(self, y: torch.Tensor, quantize: Quantize) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_hat, bits) for latent y with `quantize` standing in for rounding (latent overfitting)."""
        y_hat, likelihoods = self._relaxed(y, quantize, noisy_rate=False, exact_rate=False)
        return self.g_s(y_hat), -torch.log2(likelihoods).sum()

    # -- real bitstreams -------------------------------------------------------------------------------

    def compress(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        shapes = self.scale_shapes(y.shape[-2:])
        scales = split_scales(y, self.levels)
        strings = [self.entropy_bottleneck.compress(scales[-1])]
        medians = self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
        coarse_hat = self.entropy_bottleneck.quantize(scales[-1], "dequantize", medians)
        gc = self.gaussian_conditional

        def code(level, sigma, mu, mask):
            values = scales[level][..., mask]
            indexes = gc.build_indexes(sigma).unsqueeze(-1)
            strings.append(gc.compress(values.unsqueeze(-1), indexes, mu.unsqueeze(-1)))
            return gc.quantize(values, "dequantize", mu)

        self._walk(coarse_hat, shapes, code)
        return {"strings": strings, "shape": y.shape[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        shapes = self.scale_shapes(shape)
        if len(strings) != 1 + (len(shapes) - 1) * self.substeps:
            raise ValueError(f"an MSP stream has {1 + (len(shapes) - 1) * self.substeps} strings, got {len(strings)}")
        coarse_hat = self.entropy_bottleneck.decompress(strings[0], shapes[-1])
        gc = self.gaussian_conditional
        pending = iter(strings[1:])

        def code(level, sigma, mu, mask):
            indexes = gc.build_indexes(sigma).unsqueeze(-1)
            return gc.decompress(next(pending), indexes, means=mu.unsqueeze(-1)).squeeze(-1)

        y_hat = self._walk(coarse_hat, shapes, code)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1), "y_hat": y_hat}
