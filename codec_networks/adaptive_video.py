"""The end-to-end learned video codec with adaptation and attention (method 5, IEEE ISM 2021).

Intra frames: a learned image codec (CompressAI's scale hyperprior, the network of experiment=
lic_hyperprior, whose checkpoint can initialise it). P-frames, from the previous decoded frame:

1. motion estimation: a U-Net predicts the flow from (frame, reference), in pixels. With
   `resolution_adaptive` it runs on the pair downscaled by a power of two chosen from the frame's short
   side (`motion_factor`: the largest 2^k <= short side / `adaptation_base`, the short side of the
   training frames), and the flow is upsampled and multiplied by that factor: the same motion in
   pixels, seen at the scale the estimator was trained on. Only the encoder runs it.
2. motion coding: the flow through a scale-hyperprior transform coder (CompressAI's entropy models);
3. motion compensation: the reference warped by the decoded flow (bilinear, border), refined by a
   network that sees the warped frame, the reference and the flow;
4. residual coding: frame minus prediction through a second transform coder.

The networks' blocks are `SplitAttentionDenseBlock`s with `attention`, CompressAI's plain
`ResidualBlock`s without. With `multiplicative`, every decoder-side block (motion and residual
synthesis, refinement) is followed by per-channel factors (`ChannelScale`, 1.0 as trained) that the
encoder overfits per video and signals (codec_networks/video_overfitting.py). The interface is
CompressAI's ScaleSpaceFlow's (forward, forward_keyframe, forward_inter, compress, decompress), so
the video training module and LearnedVideoCodec drive both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel, ScaleHyperprior
from compressai.models.utils import conv, deconv
from torch import nn

from codec_networks.video_blocks import ChannelScale, make_block, refinement


def hyperprior_encode(coder: ScaleHyperprior, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """(reconstruction, [y strings, z strings]): the decoder's reconstruction computed at the encoder
    without running the rANS decoder on y (its symbols are round(y), escapes included)."""
    y = coder.g_a(x)
    z = coder.h_a(torch.abs(y))
    z_strings = coder.entropy_bottleneck.compress(z)
    z_hat = coder.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
    indexes = coder.gaussian_conditional.build_indexes(coder.h_s(z_hat))
    y_strings = coder.gaussian_conditional.compress(y, indexes)
    return coder.g_s(coder.gaussian_conditional.quantize(y, "dequantize")), [y_strings, z_strings]


def hyperprior_decode(coder: ScaleHyperprior, strings: list, shape) -> torch.Tensor:
    z_hat = coder.entropy_bottleneck.decompress(strings[1], shape)
    indexes = coder.gaussian_conditional.build_indexes(coder.h_s(z_hat))
    return coder.g_s(coder.gaussian_conditional.decompress(strings[0], indexes, z_hat.dtype))


class TransformCoder(ScaleHyperprior):
    """CompressAI's scale hyperprior around transforms of `channels` (2: flow, 3: residual) built from
    the codec's blocks; stride 16 (64 with the hyper-transforms)."""

    def __init__(self, channels: int, N: int, M: int, attention: bool, scales: bool):
        super().__init__(N, M)
        analysis = [conv(channels, N), nn.LeakyReLU(inplace=True)]
        synthesis = [deconv(M, N), nn.LeakyReLU(inplace=True)]
        for i in range(3):
            analysis += [make_block(N, attention), conv(N, M if i == 2 else N)]
            synthesis += [make_block(N, attention), ChannelScale(N) if scales else nn.Identity()]
            synthesis += [deconv(N, channels if i == 2 else N)]
        self.g_a, self.g_s = nn.Sequential(*analysis), nn.Sequential(*synthesis)


class FlowEstimator(nn.Module):
    """U-Net from (frame, reference) to a flow in pixels of its input; three stride-2 levels, so its
    input sides are multiples of 8. The output layer starts at zero: no motion until it learns some."""

    def __init__(self, N: int, attention: bool):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(6, N, 3, padding=1), nn.LeakyReLU(inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(N, N, 3, stride=2, padding=1), nn.LeakyReLU(inplace=True), make_block(N, attention))
            for _ in range(3)
        )
        self.up = nn.ModuleList(nn.ConvTranspose2d(N, N, 4, stride=2, padding=1) for _ in range(3))
        self.head = nn.Conv2d(N, 2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(torch.cat((x, reference), dim=1))]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up in self.up:
            h = F.leaky_relu(up(h)) + skips.pop()
        return self.head(h)


def warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """frame sampled at (x + flow_x, y + flow_y), flow in pixels (bilinear, border)."""
    _, _, h, w = frame.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=frame.device, dtype=frame.dtype),
        torch.arange(w, device=frame.device, dtype=frame.dtype),
        indexing="ij",
    )
    gx = (2 * (xs + flow[:, 0] + 0.5) / w) - 1  # align_corners=False: pixel centres at (i + 0.5) / size
    gy = (2 * (ys + flow[:, 1] + 0.5) / h) - 1
    return F.grid_sample(frame, torch.stack((gx, gy), dim=-1), "bilinear", "border", align_corners=False)


class AdaptiveVideoCodec(CompressionModel):
    """Method 5; the three ideas switch off with `resolution_adaptive`, `attention`, `multiplicative`."""

    codes_video = True
    min_pad_multiple = 64  # every latent at 1/16, every hyper-latent at 1/64

    def __init__(
        self,
        N: int = 64,
        M: int = 96,
        intra_N: int = 64,
        intra_M: int = 96,
        attention: bool = True,
        resolution_adaptive: bool = True,
        adaptation_base: int = 256,
        multiplicative: bool = True,
    ):
        super().__init__()
        self.resolution_adaptive, self.adaptation_base = resolution_adaptive, adaptation_base
        self.intra = ScaleHyperprior(intra_N, intra_M)
        self.motion_estimation = FlowEstimator(N // 2, attention)  # full-resolution networks at half width
        self.motion = TransformCoder(2, N, M, attention, multiplicative)
        self.compensation = refinement(8, N // 2, 3, attention, multiplicative)
        self.residual = TransformCoder(3, N, M, attention, multiplicative)

    def motion_factor(self, height: int, width: int) -> int:
        """The downscaling of motion estimation's input: 1 without adaptation, else a power of two <= 8."""
        if not self.resolution_adaptive:
            return 1
        ratio = min(height, width) / self.adaptation_base
        return 2 ** min(3, max(0, math.floor(math.log2(ratio)))) if ratio >= 1 else 1

    def multiplicative_parameters(self) -> list[nn.Parameter]:
        """The decoder-side factors, in a fixed order (what the bitstream carries)."""
        return [m.scale for m in self.modules() if isinstance(m, ChannelScale)]

    def estimate_flow(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        factor = self.motion_factor(*x.shape[-2:])
        if factor == 1:
            return self.motion_estimation(x, reference)
        flow = self.motion_estimation(F.avg_pool2d(x, factor), F.avg_pool2d(reference, factor))
        return F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False) * factor

    def predict(self, reference: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        warped = warp(reference, flow)
        return warped + self.compensation(torch.cat((warped, reference, flow), dim=1))

    # training (noise-quantised likelihoods), ScaleSpaceFlow's interface
    def forward(self, frames: list[torch.Tensor]) -> dict:
        x_hat, likelihoods = self.forward_keyframe(frames[0])
        reconstructions, all_likelihoods = [x_hat], [likelihoods]
        for x in frames[1:]:
            x_hat, likelihoods = self.forward_inter(x, x_hat.detach())  # no gradient into the reference
            reconstructions.append(x_hat)
            all_likelihoods.append(likelihoods)
        return {"x_hat": reconstructions, "likelihoods": all_likelihoods}

    def forward_keyframe(self, x: torch.Tensor):
        out = self.intra(x)
        return out["x_hat"], {"keyframe": out["likelihoods"]}

    def forward_inter(self, x: torch.Tensor, reference: torch.Tensor):
        motion = self.motion(self.estimate_flow(x, reference))
        prediction = self.predict(reference, motion["x_hat"])
        residual = self.residual(x - prediction)
        return prediction + residual["x_hat"], {"motion": motion["likelihoods"], "residual": residual["likelihoods"]}

    # coding: the strings and shapes of ScaleSpaceFlow.compress / decompress
    def compress(self, frames: list[torch.Tensor]) -> tuple[list, list]:
        reference, strings = hyperprior_encode(self.intra, frames[0])
        all_strings, shapes = [strings], [self._hyper_shape(frames[0])]
        for x in frames[1:]:
            flow_hat, motion = hyperprior_encode(self.motion, self.estimate_flow(x, reference))
            prediction = self.predict(reference, flow_hat)
            residual_hat, residual = hyperprior_encode(self.residual, x - prediction)
            reference = prediction + residual_hat
            all_strings.append({"motion": motion, "residual": residual})
            shapes.append({"motion": shapes[0], "residual": shapes[0]})
        return all_strings, shapes

    def decompress(self, strings: list, shapes: list) -> list[torch.Tensor]:
        reference = hyperprior_decode(self.intra, strings[0], shapes[0])
        frames = [reference]
        for s, shape in zip(strings[1:], shapes[1:]):
            prediction = self.predict(reference, hyperprior_decode(self.motion, s["motion"], shape["motion"]))
            reference = prediction + hyperprior_decode(self.residual, s["residual"], shape["residual"])
            frames.append(reference)
        return frames

    def _hyper_shape(self, x: torch.Tensor) -> tuple[int, int]:
        return (x.shape[-2] // self.min_pad_multiple, x.shape[-1] // self.min_pad_multiple)
