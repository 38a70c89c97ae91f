"""Lossless image coding with the multi-scale progressive statistical model (method 7).

An 8-bit image is split into scales exactly as the lossy MSP model splits its latent: scale s+1 keeps
the pixels [1::2, 1::2] of scale s, which is trivially invertible (the scales together hold every pixel
once). The coarsest scale is coded with a learned context-free distribution per channel; every finer
scale in three sub-steps per 2x2 block (the block's other three positions, one per sub-step), each
conditioned by a small CNN on everything decoded so far at that scale. Decoding thus runs
3 * (levels - 1) network evaluations whatever the image size.

Each sub-pixel has a discretised logistic mixture (PixelCNN++): K components whose means correct a
fixed interpolation of the decoded neighbours; for RGB the green means shift with the decoded red
residual (value minus interpolation) and the blue means with the red and green ones, so channels are
coded R, G, B at each position. Training takes the likelihood at the coded value only (`log_prob`);
coding tabulates all 256 bins (`pmf`). The order of the three sub-steps is adjustable: `default` ((0,0), (0,1),
(1,0)), `random` (a permutation per scale from a seed written in the stream), or `entropy` (most
predictable positions first, ranked by the entropy the first sub-step's prediction gives each
position group, which the decoder recomputes from the same values).

Encoder-side adaptation: per scale, sub-step and channel the encoder may widen or narrow every
predicted logistic by one log-scale offset (OFFSETS: -2 to +1 in steps of 1/4), choosing for each the
offset under which that sub-step's values cost fewest bits (they are known to the encoder, and the
choice does not change what later sub-steps are conditioned on). The offsets travel as one byte each
in the header, and only when they save more than they cost. A static model trained on a few photos is
over- or under-confident on other content (flat video frames, JPEG-decoded photos): measured on the
held-out photos, this saved 5% of the bits.

Real bits: the `constriction` range coder with one 256-bin categorical per sub-pixel. The mixture
parameters are rounded to a 1/4096 grid and the probabilities computed from them, on both
sides, so that the coder's tables depend only on the decoded values (and the machine's arithmetic).
The grid must be fine: the means live on the normalised [-1, 1] scale, where 1/64 is two grey levels,
and rounding them that coarsely cost 4% of the bits on photographs and 38% on flat frames (measured).
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
PARAM_GRID = 4096  # mixture parameters are rounded to multiples of 1/PARAM_GRID before coding
CODING_RULE = 2  # in the stream: 2 = tables from parameters on the 1/4096 grid (1, unnamed: 1/64)
OFFSETS = tuple(i / 4 for i in range(-8, 5))  # the log-scale offsets the encoder may choose
NO_OFFSET = OFFSETS.index(0.0)


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
    positions zero) and the mask of decoded positions; each component's base rides along as the last C·K
    channels.

    The means are predicted as corrections to `base`, the average of the decoded 3x3 neighbours of each
    position (a fixed interpolation): the network starts from a usable prediction and learns what
    interpolation misses, which is what lets a short CPU run get anywhere. With `parent_component` the
    first mixture component takes instead the block's own coarser-scale pixel (always decoded) as its
    base, and the mixture weights choose per sub-pixel between the two: with the RGB coupling at one,
    that component predicts green as red plus the parent's G−R. In frames decoded from 4:2:0 video
    R−G and B−G are constant over each aligned 2x2 block, and green and blue then cost little; a
    mixture weight learns this far faster than a correction to the average (measured: a softmax-weighted
    3x3 base, which could also pick the parent, gained a third as much in the same steps). Log-scales start at
    INITIAL_LOG_SCALE (a logistic scale of about two grey levels) instead of a uniform-looking 1.0, and the
    head's weights start small, so that the first prediction is the interpolation itself."""

    INITIAL_LOG_SCALE = -4.0
    INITIAL_COUPLING = (0.5, 0.25, 0.5)  # G on R, B on R, B on G (residuals)
    PARENT_COUPLING = (0.95, 0.0, 0.95)  # the parent component's purpose: G − R and B − G as the parent's

    def __init__(self, channels: int, components: int, hidden: int, parent_component: bool = False):
        super().__init__()
        self.channels, self.components, self.parent_component = channels, components, parent_component
        coupling = 3 if channels == 3 else 0
        self.out = channels * components * 3 + coupling * components
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels + 1, hidden, 5, padding=2),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, self.out, 1),
        )
        head = self.net[-1]
        with torch.no_grad():
            head.weight.mul_(0.1)  # start near the interpolation, not ±10 grey levels of random corrections
            head.bias[2 * channels * components : 3 * channels * components] = self.INITIAL_LOG_SCALE
            if coupling:  # the colour residuals of photographs are strongly correlated: start there
                start = 3 * channels * components
                for j, value in enumerate(self.INITIAL_COUPLING):
                    head.bias[start + j * components : start + (j + 1) * components] = math.atanh(value)
                    if parent_component:
                        head.bias[start + j * components] = math.atanh(self.PARENT_COUPLING[j])
        self.register_buffer("window", torch.ones(channels + 1, 1, 3, 3), persistent=False)

    def forward(self, canvas: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        mask = known.to(canvas.dtype).expand(canvas.shape[0], 1, *known.shape)
        visible = canvas * mask
        sums = F.conv2d(torch.cat([visible, mask], dim=1), self.window, padding=1, groups=self.channels + 1)
        base = sums[:, :-1] / sums[:, -1:].clamp_min(1.0)  # no decoded neighbour: 0, the middle grey
        params = self.net(torch.cat([visible, mask, base], dim=1))
        c, k = self.channels, self.components
        bases = base[:, :, None].expand(-1, -1, k, -1, -1)  # (B, C, K, H, W): each component's base
        if self.parent_component:
            bases = torch.cat([self._parent(canvas)[:, :, None], bases[:, :, 1:]], dim=2)
        bases = bases.reshape(base.shape[0], c * k, *base.shape[-2:])
        means = params[:, c * k : 2 * c * k] + bases
        return torch.cat([params[:, : c * k], means, params[:, 2 * c * k :], bases], dim=1)  # see Mixture

    @staticmethod
    def _parent(canvas: torch.Tensor) -> torch.Tensor:
        """Every position's parent: the coarser-scale pixel [1::2, 1::2] of its own 2x2 block (always
        decoded), nearest-upsampled; an odd last row or column takes the block before it."""
        height, width = canvas.shape[-2:]
        up = canvas[..., 1::2, 1::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        return F.pad(up, (0, width - up.shape[-1], 0, height - up.shape[-2]), mode="replicate")


@dataclass
class Mixture:
    """Per position (n) and channel (C): K logits, means and log-scales; `base` (n, C, K), each
    component's interpolation (the RGB coupling takes residuals against it); `coupling` (n, 3, K) for RGB."""

    logits: torch.Tensor  # (n, C, K)
    means: torch.Tensor
    log_scales: torch.Tensor
    base: torch.Tensor
    coupling: torch.Tensor | None

    @classmethod
    def from_params(cls, params: torch.Tensor, channels: int, components: int) -> Mixture:
        """params: (n, MixturePredictor.out + C·K) at the coded positions."""
        n, k = params.shape[0], components
        head = params[:, : channels * k * 3].reshape(n, 3, channels, k)
        base = params[:, -channels * k :].reshape(n, channels, k)
        coupling = None
        if channels == 3:
            coupling = torch.tanh(params[:, channels * k * 3 : channels * k * 3 + 3 * k].reshape(n, 3, k))
        return cls(head[:, 0], head[:, 1], head[:, 2].clamp(min=-7.0), base, coupling)

    def rounded(self) -> Mixture:
        """Parameters on the 1/PARAM_GRID grid: what both coder sides build tables from."""

        def r(t):
            return None if t is None else torch.round(t * PARAM_GRID) / PARAM_GRID

        return Mixture(
            r(self.logits), r(self.means), r(self.log_scales).clamp(min=-7.0), r(self.base), r(self.coupling)
        )

    def with_offsets(self, offsets: list[float]) -> Mixture:
        """Every channel c's log-scales moved by offsets[c] (the encoder's choice)."""
        shift = torch.tensor(offsets, dtype=self.log_scales.dtype, device=self.log_scales.device)[None, :, None]
        return Mixture(self.logits, self.means, (self.log_scales + shift).clamp(min=-7.0), self.base, self.coupling)

    def channel(self, c: int, decoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, means, log_scales) of channel c, the means shifted by the residuals (value - base) of
        the channels decoded before it at the same positions (`decoded`: normalised values, (n,) each)."""
        means = self.means[:, c]
        if self.coupling is not None and c > 0:
            weights = self.coupling[:, :1] if c == 1 else self.coupling[:, 1:]  # G: (alpha); B: (beta, gamma)
            for j in range(c):
                means = means + weights[:, j] * (decoded[j][:, None] - self.base[:, j])
        return self.logits[:, c], means, self.log_scales[:, c]


HALF_BIN = 1 / 255  # half the width of one of the 256 bins on the normalised [-1, 1] scale
PROB_FLOOR = 1e-9  # no value is impossible: the coder needs every bin > 0


def pmf(logits, means, log_scales) -> torch.Tensor:
    """P(v) for v = 0..255 per position, (n, 256): each bin [v - 1/2, v + 1/2] on the normalised scale,
    the edge bins taking the tails; the K components mixed by softmax(logits). One sigmoid per inner
    bin edge (255 of them), differenced."""
    edges = normalise(torch.arange(255, dtype=means.dtype, device=means.device)) + HALF_BIN
    cdf = torch.sigmoid(torch.exp(-log_scales)[:, :, None] * (edges - means[:, :, None]))  # (n, K, 255)
    cdf = F.pad(cdf, (1, 0), value=0.0)
    cdf = F.pad(cdf, (0, 1), value=1.0)
    weights = torch.softmax(logits, dim=-1)[:, None, :]  # (n, 1, K)
    return torch.bmm(weights, cdf.diff(dim=-1))[:, 0].clamp_min(PROB_FLOOR)


def log_prob(logits, means, log_scales, values: torch.Tensor) -> torch.Tensor:
    """log P(values) (natural log, (n,)) under the mixture pmf() tabulates, computed at the coded value
    only: O(n·K) instead of pmf's O(n·K·256), which is what makes training affordable. Stable in the
    tails (PixelCNN++'s log-sigmoid forms); `values` are the integer values 0..255 (as float)."""
    x = normalise(values)[:, None]
    centred = x - means
    inv = torch.exp(-log_scales)
    plus, minus = inv * (centred + HALF_BIN), inv * (centred - HALF_BIN)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lower tail bin v = 0
    log_sf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus)): the upper tail bin v = 255
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    # where the bin holds almost no mass the difference cancels: the density at the centre times the
    # bin width stands in for it
    mid = inv * centred
    log_density = mid - log_scales - 2 * F.softplus(mid) + math.log(2 * HALF_BIN)
    log_inner = torch.where(delta > 1e-5, torch.log(delta.clamp_min(1e-12)), log_density)
    v = values[:, None]
    log_bin = torch.where(v < 0.5, log_cdf_plus, torch.where(v > 254.5, log_sf_minus, log_inner))
    mixed = torch.logsumexp(F.log_softmax(logits, dim=-1) + log_bin, dim=-1)
    return mixed.clamp_min(math.log(PROB_FLOOR))


def coding_tables(mixture: Mixture, c: int, decoded: list[torch.Tensor], chunk: int = 1 << 14) -> np.ndarray:
    """The coder's (n, 256) float32 probability tables for channel c, in chunks of positions (memory)."""
    logits, means, log_scales = mixture.channel(c, decoded)
    parts = [
        pmf(logits[i : i + chunk], means[i : i + chunk], log_scales[i : i + chunk]) for i in range(0, len(means), chunk)
    ]
    return torch.cat(parts).cpu().numpy() if parts else np.zeros((0, 256), np.float32)


class LosslessMSP(nn.Module):
    """`levels` scales (fewer for images too small), one MixturePredictor per sub-step shared by all
    scales, `components` logistics per sub-pixel; `parent_component`: see MixturePredictor."""

    def __init__(
        self,
        channels: int = 3,
        levels: int = 4,
        components: int = 5,
        hidden: int = 64,
        parent_component: bool = False,
    ):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        self.channels, self.levels, self.components = channels, levels, components
        self.coarse_logits = nn.Parameter(torch.zeros(channels, 256))
        self.predictors = nn.ModuleList(
            MixturePredictor(channels, components, hidden, parent_component) for _ in POSITIONS
        )

    # -- the walk shared by training and coding ----------------------------------------------------

    def _walk(self, coarse: torch.Tensor, shapes, order: str, seed: int, code) -> torch.Tensor:
        """From the coarsest scale (uint8 values as float) to the finest. code(level, mixture, mask)
        codes the scale's positions under `mask` and returns their values, (B, C, n)."""
        if order not in ORDERS:
            raise InputError(f"order must be one of {ORDERS}, got {order!r}")
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

    def forward(self, x: torch.Tensor, order: str = "default", seed: int = 0) -> torch.Tensor:
        """Bits of the batch x (B, C, H, W) of uint8 values (any integer or float dtype) coded in `order`
        (`seed`: the random order's permutations); differentiable."""
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
                total.append(-log_prob(*mixture.channel(c, decoded), flat[:, c]).sum() / math.log(2))
            return values

        self._walk(coarse, shapes, order, seed, code)
        return torch.stack(total).sum()

    # -- real bitstreams -----------------------------------------------------------------------------

    def _categorical(self):
        import constriction

        return constriction.stream.model.Categorical(perfect=False)

    @property
    def _device(self) -> torch.device:
        return self.coarse_logits.device

    def _coarse_tables(self, count: int) -> list[np.ndarray]:
        cpmf = self._coarse_pmf().cpu().numpy()
        return [np.repeat(cpmf[c][None], count, axis=0) for c in range(self.channels)]

    @torch.no_grad()
    def encode(self, image: torch.Tensor, order: str = "default", seed: int = 0) -> bytes:
        """One image (C, H, W) of uint8 values -> bytes. Range coding (a queue) lets every sub-step's
        tables be coded and dropped as they are built: memory does not grow with the image."""
        import constriction

        image = self._check(image)
        if not 0 <= seed <= 255:
            raise InputError(f"the random order's seed is one byte of the stream: 0..255, got {seed}")
        scales = split_scales(image[None].to(self._device, torch.float32), self.levels)
        shapes = [tuple(s.shape[-2:]) for s in scales]
        coder = constriction.stream.queue.RangeEncoder()
        model = self._categorical()
        coarse = scales[-1][0].reshape(self.channels, -1).long().cpu().numpy()
        for c, table in enumerate(self._coarse_tables(coarse.shape[1])):
            coder.encode(coarse[c].astype(np.int32), model, table)

        choices = []  # pass 1: per sub-step the offsets that code its values in fewest bits, and the saving

        def choose(level: int, mixture: Mixture, mask: torch.Tensor) -> torch.Tensor:
            values = scales[level][..., mask]
            choices.append(self._best_offsets(mixture, values[0].T))
            return values

        self._walk(scales[-1], shapes, order, seed, choose)
        adapt = sum(saved for _, saved in choices) > 8 * len(choices) * self.channels  # must pay for its bytes
        offsets = iter([chosen if adapt else [NO_OFFSET] * self.channels for chosen, _ in choices])

        def code(level: int, mixture: Mixture, mask: torch.Tensor) -> torch.Tensor:  # pass 2: the stream
            values = scales[level][..., mask]
            flat = values[0].T  # (n, C)
            mixture = mixture.with_offsets([OFFSETS[i] for i in next(offsets)]).rounded()
            decoded = [normalise(flat[:, c]) for c in range(self.channels)]
            for c in range(self.channels):
                coder.encode(flat[:, c].cpu().numpy().astype(np.int32), model, coding_tables(mixture, c, decoded))
            return values

        self._walk(scales[-1], shapes, order, seed, code)
        stream = coder.get_compressed().tobytes()
        crc = zlib.crc32(image.numpy().tobytes()).to_bytes(4, "big")
        header = bytes([self.channels, ORDERS.index(order), seed, CODING_RULE]) + crc
        adaptation = bytes([len(choices), *(i for chosen, _ in choices for i in chosen)]) if adapt else b"\0"
        return pack(Payload(fingerprint(self), image.shape[1], image.shape[2], (stream,), header + adaptation))

    def _best_offsets(self, mixture: Mixture, flat: torch.Tensor) -> tuple[list[int], float]:
        """Per channel the index in OFFSETS of the log-scale offset that codes `flat` (n, C) in fewest
        bits (estimated with log_prob on the rounded parameters), and the bits it saves over none."""
        decoded = [normalise(flat[:, c]) for c in range(self.channels)]
        bits = np.zeros((len(OFFSETS), self.channels))
        for k, offset in enumerate(OFFSETS):
            shifted = mixture.with_offsets([offset] * self.channels).rounded()
            for c in range(self.channels):
                bits[k, c] = float(-log_prob(*shifted.channel(c, decoded), flat[:, c]).sum()) / math.log(2)
        best = bits.argmin(axis=0)
        saved = float((bits[NO_OFFSET] - bits[best, range(self.channels)]).sum())
        return [int(i) for i in best], saved

    @torch.no_grad()
    def decode(self, data: bytes) -> torch.Tensor:
        """bytes -> the image (C, H, W), uint8, bit-exact, or BitstreamError."""
        import constriction

        payload = unpack(data, 1, fingerprint(self))
        side = payload.side_info
        if len(side) == 7 or (len(side) >= 8 and side[3] != CODING_RULE):
            raise BitstreamError(
                "the stream was written by an earlier vcmlab whose tables differ (coarser parameter grid): "
                "re-encode the image with this version"
            )
        if len(side) < 9 or side[0] != self.channels or side[1] >= len(ORDERS):
            raise BitstreamError("the stream's lossless header is corrupt")
        order, seed, crc = ORDERS[side[1]], side[2], int.from_bytes(side[4:8], "big")
        shapes = scale_shapes(payload.height, payload.width, self.levels)
        substeps = 3 * (len(shapes) - 1)
        if (
            side[8] not in (0, substeps)
            or len(side) != 9 + side[8] * self.channels
            or max(side[9:], default=0) >= len(OFFSETS)
        ):
            raise BitstreamError("the stream's scale offsets are corrupt")
        chosen = iter([list(side[9 + i * self.channels : 9 + (i + 1) * self.channels]) for i in range(side[8])])
        if len(payload.streams[0]) % 4:
            raise BitstreamError("the lossless payload is not a whole number of coder words: truncated")
        coder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload.streams[0], dtype=np.uint32).copy())
        model = self._categorical()
        h, w = shapes[-1]
        coarse = np.stack([coder.decode(model, table) for table in self._coarse_tables(h * w)])
        coarse = torch.from_numpy(coarse.astype(np.float32)).reshape(1, self.channels, h, w).to(self._device)

        def code(level: int, mixture: Mixture, mask: torch.Tensor) -> torch.Tensor:
            offsets = next(chosen, [NO_OFFSET] * self.channels)
            mixture = mixture.with_offsets([OFFSETS[i] for i in offsets]).rounded()
            values: list[torch.Tensor] = []
            for c in range(self.channels):
                table = coding_tables(mixture, c, [normalise(v) for v in values])
                values.append(torch.from_numpy(coder.decode(model, table).astype(np.float32)).to(self._device))
            return torch.stack(values)[None]  # (1, C, n)

        image = self._walk(coarse, shapes, order, seed, code)[0].to(torch.uint8).cpu()
        if zlib.crc32(image.numpy().tobytes()) != crc:
            raise BitstreamError("the decoded image does not match the encoder's checksum: the stream is corrupt")
        return image

    def _check(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] != self.channels:
            raise InputError(f"this model codes ({self.channels}, H, W) images, got {tuple(image.shape)}")
        if image.dtype != torch.uint8:
            raise InputError(f"lossless coding takes uint8 images (8 bits per sample), got {image.dtype}")
        return image.cpu()
