"""Lossless image coding with the multi-scale progressive statistical model (method 7).

An 8-bit image is split into scales exactly as the lossy MSP model splits its latent: scale s+1 keeps
the pixels [1::2, 1::2] of scale s, which is trivially invertible (the scales together hold every pixel
once). The coarsest scale is coded with a learned context-free distribution per channel; every finer
scale in three sub-steps per 2x2 block (the block's other three positions, one per sub-step), each
conditioned by a small CNN on everything decoded so far at that scale. Decoding thus runs
3 * (levels - 1) network evaluations whatever the image size.

Each sub-pixel has a discretised logistic mixture (PixelCNN++): K components, and for RGB the green
means shift with the decoded red value and the blue means with red and green, so channels are coded
R, G, B at each position. The order of the three sub-steps is adjustable: `default` ((0,0), (0,1),
(1,0)), `random` (a permutation per scale from a seed written in the stream), or `entropy` (most
predictable positions first, ranked by the entropy the first sub-step's prediction gives each
position group, which the decoder recomputes from the same values).

Real bits: the `constriction` ANS coder with one 256-bin categorical per sub-pixel. The mixture
parameters are rounded to a 1/64 grid and the probabilities computed from them, on both
sides, so that the coder's tables depend only on the decoded values (and the machine's arithmetic).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codec_networks.bitstream import Payload, pack, unpack
from codec_networks.entropy_state import fingerprint
from codec_networks.msp import parity_mask
from vcmlab.errors import BitstreamError, InputError

POSITIONS = ((0, 0), (0, 1), (1, 0))  # the block positions a finer scale adds; (1, 1) is the coarser scale
ORDERS = ("default", "random", "entropy")
PARAM_GRID = 64  # mixture parameters are rounded to multiples of 1/PARAM_GRID before coding


def split_scales(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[x, x[..., 1::2, 1::2], ...], finest first; fewer than `levels` where a side would reach 0."""
    scales = [x]
    while len(scales) < levels and min(scales[-1].shape[-2:]) >= 2:
        scales.append(scales[-1][..., 1::2, 1::2])
    return scales


def scale_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    shapes = [(height, width)]
    while len(shapes) < levels and min(shapes[-1]) >= 2:
        shapes.append((shapes[-1][0] // 2, shapes[-1][1] // 2))
    return shapes


def normalise(values: torch.Tensor) -> torch.Tensor:
    return values / 127.5 - 1.0


class MixturePredictor(nn.Module):
    """Logistic-mixture parameters for every position of a scale from its partly decoded grid (unknown
    positions zero) and the mask of decoded positions."""

    def __init__(self, channels: int, components: int, hidden: int):
        super().__init__()
        self.channels, self.components = channels, components
        coupling = 3 if channels == 3 else 0
        self.out = channels * components * 3 + coupling * components
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, hidden, 5, padding=2),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, self.out, 1),
        )

    def forward(self, canvas: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        mask = known.to(canvas.dtype).expand(canvas.shape[0], 1, *known.shape)
        return self.net(torch.cat([canvas * mask, mask], dim=1))


@dataclass
class Mixture:
    """Per position (n) and channel (C): K logits, means and log-scales; `coupling` (n, 3, K) for RGB."""

    logits: torch.Tensor  # (n, C, K)
    means: torch.Tensor
    log_scales: torch.Tensor
    coupling: torch.Tensor | None

    @classmethod
    def from_params(cls, params: torch.Tensor, channels: int, components: int) -> Mixture:
        """params: (n, out) at the coded positions."""
        n, k = params.shape[0], components
        head = params[:, : channels * k * 3].reshape(n, 3, channels, k)
        coupling = torch.tanh(params[:, channels * k * 3 :].reshape(n, 3, k)) if channels == 3 else None
        return cls(head[:, 0], head[:, 1], head[:, 2].clamp(min=-7.0), coupling)

    def rounded(self) -> Mixture:
        """Parameters on the 1/PARAM_GRID grid: what both coder sides build tables from."""

        def r(t):
            return None if t is None else torch.round(t * PARAM_GRID) / PARAM_GRID

        return Mixture(r(self.logits), r(self.means), r(self.log_scales).clamp(min=-7.0), r(self.coupling))

    def channel(self, c: int, decoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, means, log_scales) of channel c, the means shifted by the channels decoded before
        it at the same positions (normalised values, (n,) each)."""
        means = self.means[:, c]
        if self.coupling is not None and c > 0:
            alpha, beta, gamma = self.coupling[:, 0], self.coupling[:, 1], self.coupling[:, 2]
            if c == 1:
                means = means + alpha * decoded[0][:, None]
            else:
                means = means + beta * decoded[0][:, None] + gamma * decoded[1][:, None]
        return self.logits[:, c], means, self.log_scales[:, c]


def pmf(logits, means, log_scales) -> torch.Tensor:
    """P(v) for v = 0..255 per position, (n, 256): each bin [v - 1/2, v + 1/2] on the normalised scale,
    the edge bins taking the tails; the K components mixed by softmax(logits)."""
    centres = normalise(torch.arange(256, dtype=means.dtype, device=means.device))
    inv = torch.exp(-log_scales)[:, :, None]  # (n, K, 1)
    x = centres - means[:, :, None]
    upper = torch.sigmoid(inv * (x[..., :-1] + 1 / 255))  # bins 0..254; 255 takes the upper tail
    lower = torch.sigmoid(inv * (x[..., 1:] - 1 / 255))  # bins 1..255; 0 takes the lower tail
    upper = torch.cat([upper, torch.ones_like(upper[..., :1])], dim=-1)
    lower = torch.cat([torch.zeros_like(lower[..., :1]), lower], dim=-1)
    weights = torch.softmax(logits, dim=-1)[:, None, :]  # (n, 1, K)
    return torch.bmm(weights, upper - lower)[:, 0].clamp_min(1e-9)


def coding_tables(mixture: Mixture, c: int, decoded: list[torch.Tensor], chunk: int = 1 << 14) -> np.ndarray:
    """The coder's (n, 256) float32 probability tables for channel c, in chunks of positions (memory)."""
    logits, means, log_scales = mixture.channel(c, decoded)
    parts = [
        pmf(logits[i : i + chunk], means[i : i + chunk], log_scales[i : i + chunk]) for i in range(0, len(means), chunk)
    ]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 256), np.float32)


class LosslessMSP(nn.Module):
    """`levels` scales (fewer for images too small), one MixturePredictor per sub-step shared by all
    scales, `components` logistics per sub-pixel."""

    def __init__(self, channels: int = 3, levels: int = 4, components: int = 5, hidden: int = 64):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        self.channels, self.levels, self.components = channels, levels, components
        self.coarse_logits = nn.Parameter(torch.zeros(channels, 256))
        self.predictors = nn.ModuleList(MixturePredictor(channels, components, hidden) for _ in POSITIONS)

    # -- the walk shared by training and coding ----------------------------------------------------

    def _walk(self, coarse: torch.Tensor, shapes, order: str, seed: int, code) -> torch.Tensor:
        """From the coarsest scale (uint8 values as float) to the finest. code(level, mixture, mask)
        codes the scale's positions under `mask` and returns their values, (B, C, n)."""
        rng = np.random.default_rng(seed)
        hat = coarse
        for level in reversed(range(len(shapes) - 1)):
            height, width = shapes[level]
            canvas = hat.new_zeros(hat.shape[0], self.channels, height, width)
            canvas[..., 1::2, 1::2] = hat
            known = parity_mask(height, width, [(1, 1)], hat.device)
            groups = list(POSITIONS)
            if order == "random":
                groups = [POSITIONS[i] for i in rng.permutation(3)]
            for k, predictor in enumerate(self.predictors):
                params = predictor(normalise(canvas), known)
                if k == 0 and order == "entropy":
                    groups = self._by_entropy(params, height, width, hat.device)
                step = parity_mask(height, width, [groups[k]], hat.device)
                values = code(level, self._mixture(params, step), step)
                canvas = canvas.clone()
                canvas[..., step] = values
                known = known | step
            hat = canvas
        return hat

    def _mixture(self, params: torch.Tensor, step: torch.Tensor) -> Mixture:
        at = params[..., step]  # (B, out, n)
        return Mixture.from_params(at.permute(0, 2, 1).reshape(-1, at.shape[1]), self.channels, self.components)

    def _by_entropy(self, params, height, width, device) -> list[tuple[int, int]]:
        """The three position groups, lowest mean predicted entropy first (ties: default order)."""
        entropy = []
        for position in POSITIONS:
            mask = parity_mask(height, width, [position], device)
            m = self._mixture(params, mask).rounded()  # channel coupling left out: a ranking, not a code
            p = torch.stack([pmf(m.logits[:, c], m.means[:, c], m.log_scales[:, c]) for c in range(self.channels)])
            entropy.append(float(-(p * torch.log2(p)).sum(-1).mean()) if p.numel() else 0.0)  # empty: 1-wide grids
        ranked = sorted(range(3), key=lambda i: (round(entropy[i], 6), i))
        return [POSITIONS[i] for i in ranked]

    def _coarse_pmf(self) -> torch.Tensor:
        return torch.softmax(torch.round(self.coarse_logits * PARAM_GRID) / PARAM_GRID, dim=-1)  # (C, 256)

    # -- training: bits per sub-pixel ----------------------------------------------------------------

    def forward(self, x: torch.Tensor, order: str = "default") -> torch.Tensor:
        """Bits of the batch x (B, C, H, W) of uint8 values (any integer or float dtype); differentiable."""
        x = x.to(torch.float32)
        scales = split_scales(x, self.levels)
        shapes = [tuple(s.shape[-2:]) for s in scales]
        coarse = scales[-1]
        lp = F.log_softmax(self.coarse_logits, dim=-1)
        bits = -lp.gather(1, coarse.long().permute(1, 0, 2, 3).reshape(self.channels, -1)).sum() / math.log(2)
        total = [bits]

        def code(level: int, mixture: Mixture, mask: torch.Tensor) -> torch.Tensor:
            values = scales[level][..., mask]  # (B, C, n)
            flat = values.permute(0, 2, 1).reshape(-1, self.channels)  # (B*n, C)
            decoded = [normalise(flat[:, c]) for c in range(self.channels)]
            for c in range(self.channels):
                p = pmf(*mixture.channel(c, decoded)).gather(1, flat[:, c].long()[:, None])
                total.append(-torch.log2(p).sum())
            return values

        self._walk(coarse, shapes, order, 0, code)
        return torch.stack(total).sum()

    # -- real bitstreams -----------------------------------------------------------------------------

    def _categorical(self):
        import constriction

        return constriction.stream.model.Categorical(perfect=False)

    @torch.no_grad()
    def encode(self, image: torch.Tensor, order: str = "default", seed: int = 0) -> bytes:
        """One image (C, H, W) of uint8 values -> bytes."""
        import constriction

        image = self._check(image)
        if order not in ORDERS:
            raise InputError(f"order must be one of {ORDERS}, got {order!r}")
        x = image[None].to(torch.float32)
        scales = split_scales(x, self.levels)
        shapes = [tuple(s.shape[-2:]) for s in scales]
        symbols, tables = [], []  # in decoding order
        coarse = scales[-1][0].reshape(self.channels, -1).long()
        cpmf = self._coarse_pmf()
        for c in range(self.channels):
            symbols.append(coarse[c].numpy())
            tables.append(np.repeat(cpmf[c].numpy()[None], coarse.shape[1], axis=0))

        def code(level: int, mixture: Mixture, mask: torch.Tensor) -> torch.Tensor:
            values = scales[level][..., mask]
            flat = values[0].T  # (n, C)
            mixture = mixture.rounded()
            decoded = [normalise(flat[:, c]) for c in range(self.channels)]
            for c in range(self.channels):
                symbols.append(flat[:, c].long().numpy())
                tables.append(coding_tables(mixture, c, decoded))
            return values

        self._walk(scales[-1], shapes, order, seed, code)
        coder = constriction.stream.stack.AnsCoder()
        model = self._categorical()
        # ANS is a stack: encode in reverse so that the decoder pops in decoding order
        for s, t in zip(reversed(symbols), reversed(tables)):
            coder.encode_reverse(s.astype(np.int32), model, t.astype(np.float32))
        stream = coder.get_compressed().tobytes()
        side = bytes([self.channels, ORDERS.index(order), seed & 0xFF]) + zlib.crc32(image.numpy().tobytes()).to_bytes(
            4, "big"
        )
        return pack(Payload(fingerprint(self), image.shape[1], image.shape[2], (stream,), side))

    @torch.no_grad()
    def decode(self, data: bytes) -> torch.Tensor:
        """bytes -> the image (C, H, W), uint8, bit-exact, or BitstreamError."""
        import constriction

        payload = unpack(data, 1)
        if payload.fingerprint != fingerprint(self):
            raise BitstreamError("bitstream was written by another model: decode with the checkpoint that encoded it")
        side = payload.side_info
        if len(side) != 7 or side[0] != self.channels or side[1] >= len(ORDERS):
            raise BitstreamError("the stream's lossless header is corrupt")
        order, seed, crc = ORDERS[side[1]], side[2], int.from_bytes(side[3:], "big")
        shapes = scale_shapes(payload.height, payload.width, self.levels)
        words = np.frombuffer(payload.streams[0], dtype=np.uint32) if len(payload.streams[0]) % 4 == 0 else None
        if words is None:
            raise BitstreamError("the lossless payload is not a whole number of coder words: truncated")
        coder = constriction.stream.stack.AnsCoder(words.copy())
        model = self._categorical()
        cpmf = self._coarse_pmf()
        h, w = shapes[-1]
        coarse = (
            torch.stack(
                [
                    torch.from_numpy(
                        coder.decode(model, np.repeat(cpmf[c].numpy()[None], h * w, axis=0).astype(np.float32)).astype(
                            np.int64
                        )
                    )
                    for c in range(self.channels)
                ]
            )
            .reshape(1, self.channels, h, w)
            .to(torch.float32)
        )

        def code(level: int, mixture: Mixture, mask: torch.Tensor) -> torch.Tensor:
            mixture = mixture.rounded()
            decoded: list[torch.Tensor] = []
            out = []
            for c in range(self.channels):
                table = coding_tables(mixture, c, decoded)
                v = torch.from_numpy(coder.decode(model, table).astype(np.int64)).to(torch.float32)
                out.append(v)
                decoded.append(normalise(v))
            return torch.stack(out)[None]  # (1, C, n)

        image = self._walk(coarse, shapes, order, seed, code)[0].to(torch.uint8)
        if zlib.crc32(image.numpy().tobytes()) != crc:
            raise BitstreamError("the decoded image does not match the encoder's checksum: the stream is corrupt")
        return image

    def _check(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] != self.channels:
            raise InputError(f"this model codes ({self.channels}, H, W) images, got {tuple(image.shape)}")
        if image.dtype != torch.uint8:
            raise InputError(f"lossless coding takes uint8 images (8 bits per sample), got {image.dtype}")
        return image.cpu()
