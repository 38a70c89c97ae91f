"""Learned video coding: the GOP codec interface and CompressAI's ScaleSpaceFlow behind it.

A sequence is one file: a varint frame count and a varint intra period (an intra frame every that
many frames starts a new GOP), then per frame a varint length and that frame's own container
(codec_networks.bitstream: model fingerprint, frame size, its entropy-coded streams, CRC), so a
damaged frame is refused and every frame's size is recoverable (`frame_sizes`).

`PixelFlowSSF` fixes ScaleSpaceFlow's resolution dependence (CompressAI #307): CompressAI adds the
decoded flow to a grid in normalised [-1, 1] coordinates, so a flow learnt on 256x256 crops moves
content by a different number of pixels on a 1280x720 frame. Here the flow is in pixels and converted
to the grid's units (2/W, 2/H per pixel, align_corners=False) for the frame being warped.
"""

from __future__ import annotations

from typing import Protocol

import torch
from compressai.models.video import ScaleSpaceFlow

from codec_networks.bitstream import Payload, pack, read_varint, unpack, write_varint
from codec_networks.entropy_state import fingerprint
from codec_networks.padding import crop_to, pad_to_multiple
from codec_networks.video_overfitting import (
    MultiplicativeOverfitting,
    decode_factors,
    encode_factors,
    factors_applied,
    quantise,
)
from vcm_metrics import mse_255
from vcmlab.errors import BitstreamError, ConfigError, InputError

HYPERPRIOR_STRIDE = 128  # ScaleSpaceFlow: 16 in the encoders, 8 more in the hyper-encoders (measured)


class VideoCodec(Protocol):
    """Codes a GOP, frames (T, 3, H, W) in [0, 1], into one self-contained file and back."""

    name: str

    def encode(self, frames: torch.Tensor) -> bytes: ...

    def decode(self, data: bytes) -> torch.Tensor: ...


class PixelFlowSSF(ScaleSpaceFlow):
    """ScaleSpaceFlow with its flow in pixel units: the same motion at any resolution."""

    codes_video = True  # a video model for the checkpoint loaders (is_video_model)
    min_pad_multiple = HYPERPRIOR_STRIDE  # frames are padded to this (codec_networks.padding)

    def __init__(self, num_levels: int = 5, sigma0: float = 1.5, scale_field_shift: float = 1.0):
        super().__init__(num_levels, sigma0, scale_field_shift)
        self._arguments = (num_levels, sigma0, scale_field_shift)

    def __reduce__(self):
        # CompressAI defines SSF's sub-networks as classes local to __init__, which pickle cannot name:
        # rebuild from the arguments and the state instead (ddp_spawn pickles the module to each process)
        return _rebuilt, (type(self), self._arguments, self.state_dict(), self.training)

    def aux_loss(self) -> torch.Tensor:
        return sum(super().aux_loss())  # CompressAI's returns a list, one per hyperprior

    def warp_volume(self, volume, flow, scale_field, padding_mode: str = "border"):
        height, width = volume.shape[-2:]
        per_pixel = torch.tensor([2.0 / width, 2.0 / height], device=flow.device, dtype=flow.dtype)
        return super().warp_volume(volume, flow * per_pixel.view(1, 2, 1, 1), scale_field, padding_mode)


def _rebuilt(cls, arguments, state, training):
    model = cls(*arguments)
    model.load_state_dict(state)  # CompressionModel resizes the CDF buffers update() grew
    return model.train(training)


def is_video_model(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "codes_video", False))


def read_header(data: bytes) -> tuple[int, int, int]:
    """(frame count, intra period, offset of the first frame) of a sequence file."""
    count, pos = read_varint(data, 0, "frame count")
    intra_period, pos = read_varint(data, pos, "intra period")
    if count and not intra_period:
        raise BitstreamError("sequence stream has an intra period of 0")
    return count, intra_period, pos


def split_gop(data: bytes) -> list[bytes]:
    """The per-frame containers of a sequence file."""
    count, _, pos = read_header(data)
    frames = []
    for i in range(count):
        length, pos = read_varint(data, pos, f"frame {i} length")
        if pos + length > len(data):
            raise BitstreamError(f"GOP stream truncated in frame {i} of {count}")
        frames.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise BitstreamError(f"GOP stream has {len(data) - pos} bytes after its {count} frames")
    return frames


def frame_sizes(data: bytes) -> list[int]:
    """Bytes of each frame of a sequence file (the varint framing counted with the frame it announces)."""
    return [len(write_varint(len(f))) + len(f) for f in split_gop(data)]


def frame_types(data: bytes) -> list[str]:
    """'I' or 'P' per frame of a sequence file, from its intra period."""
    count, intra_period, _ = read_header(data)
    return ["I" if t % intra_period == 0 else "P" for t in range(count)]


class LearnedVideoCodec:
    """A ScaleSpaceFlow (or a model with its interface: AdaptiveVideoCodec) coding sequences: an intra
    frame every `intra_period` frames (None: only the first), the others predicted from the previous
    decoded frame. Frames are padded to the model's `min_pad_multiple` and cropped back.

    `overfitting` (models with multiplicative parameters): the encoder overfits them per GOP and puts
    them in the GOP's intra-frame container when the real file's R + λ·D is lower with them."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "cpu",
        name: str = "ssf",
        intra_period: int | None = None,
        overfitting: MultiplicativeOverfitting | None = None,
    ):
        if intra_period is not None and (not isinstance(intra_period, int) or intra_period < 1):
            raise ConfigError(f"intra_period must be a positive integer or null, got {intra_period!r}")
        if overfitting is not None and not getattr(model, "multiplicative_parameters", lambda: [])():
            raise ConfigError(f"{type(model).__name__} has no multiplicative parameters to overfit")
        self.model = model.to(device).eval()
        self.device, self.name, self.intra_period = torch.device(device), name, intra_period
        self.overfitting = overfitting
        self.stride = int(getattr(model, "min_pad_multiple", HYPERPRIOR_STRIDE))
        self.model.update(force=True)
        self.fingerprint = fingerprint(self.model)
        self.last_encode_info: dict = {}
        self.last_factors: list[tuple[torch.Tensor, int]] = []  # (integers, step exponent) per GOP sending them

    @property
    def settings(self) -> dict:
        settings = {"model": type(self.model).__name__, "structure": "low-delay P", "intra_period": self.intra_period}
        for switch in ("attention", "resolution_adaptive", "adaptation_base"):
            if hasattr(self.model, switch):
                settings[switch] = getattr(self.model, switch)
        return settings | (self.overfitting.settings if self.overfitting else {})

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> bytes:
        if frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
            raise InputError(f"a sequence is (T, 3, H, W) with T >= 1, got {tuple(frames.shape)}")
        count = frames.shape[0]
        period = self.intra_period or count
        out, side_bytes, self.last_factors = [write_varint(count), write_varint(period)], 0, []
        for start in range(0, count, period):
            containers = self._encode_gop(frames[start : start + period].to(self.device))
            side_bytes += len(unpack(containers[0], 2, self.fingerprint).side_info)
            for payload in containers:
                out += [write_varint(len(payload)), payload]
        self.last_encode_info = {"side_info_bytes": side_bytes}
        return b"".join(out)

    def _encode_gop(self, originals: torch.Tensor) -> list[bytes]:
        """The frame containers of one GOP, with overfitted factors if a candidate step pays."""
        frames = [pad_to_multiple(f[None], self.stride) for f in originals]
        best = self._code(frames, originals.shape[-2:], b"")
        if self.overfitting is None:
            return best
        factors = self.overfitting.fit(self.model, frames, originals)
        best_cost, sent = self._cost(best, originals), None
        for exponent in self.overfitting.exponents:
            integers = quantise(factors, exponent)
            if not integers.any():
                continue
            with factors_applied(self.model, integers, exponent):
                candidate = self._code(frames, originals.shape[-2:], encode_factors(integers, exponent))
            cost = self._cost(candidate, originals)
            if cost < best_cost:
                best, best_cost, sent = candidate, cost, (integers, exponent)
        if sent is not None:
            self.last_factors.append(sent)
        return best

    def _code(self, frames: list[torch.Tensor], size, side_info: bytes) -> list[bytes]:
        strings, _ = self.model.compress(frames)
        containers = []
        for t, frame_strings in enumerate(strings):  # intra: [y, z]; inter: {motion: [y, z], residual: [y, z]}
            streams = frame_strings if isinstance(frame_strings, list) else sum(frame_strings.values(), [])
            side = side_info if t == 0 else b""
            containers.append(pack(Payload(self.fingerprint, *size, tuple(s[0] for s in streams), side)))
        return containers

    def _cost(self, containers: list[bytes], originals: torch.Tensor) -> float:
        """Real R + λ·D of a coded GOP: its bytes and its decoded frames."""
        decoded = self._decode_gop(containers).to(originals.device)
        bpp = 8 * sum(len(c) for c in containers) / (originals.shape[0] * originals.shape[-2] * originals.shape[-1])
        return bpp + self.overfitting.distortion_weight * float(mse_255(decoded, originals))

    def payload_bytes(self, data: bytes) -> int:
        """The entropy-coded streams' bytes and side information: the file less its framing, fingerprints
        and checksums."""
        kinds = frame_types(data)
        payloads = [unpack(f, 2 if kinds[t] == "I" else 4, self.fingerprint) for t, f in enumerate(split_gop(data))]
        return sum(sum(map(len, p.streams)) + len(p.side_info) for p in payloads)

    def frame_types(self, data: bytes) -> list[str]:
        return frame_types(data)

    def frame_sizes(self, data: bytes) -> list[int]:
        return frame_sizes(data)

    @torch.no_grad()
    def decode(self, data: bytes) -> torch.Tensor:
        frames = split_gop(data)
        if not frames:
            raise BitstreamError("sequence stream holds no frame")
        kinds, decoded, gop = frame_types(data), [], []
        for t in range(len(kinds)):
            gop.append(frames[t])
            if t + 1 == len(kinds) or kinds[t + 1] == "I":  # the GOP is complete
                decoded.append(self._decode_gop(gop, first=t + 1 - len(gop)))
                gop = []
        return torch.cat(decoded).cpu()

    def _decode_gop(self, containers: list[bytes], first: int = 0) -> torch.Tensor:
        strings, shapes = [], []
        for t, container in enumerate(containers):
            try:
                payload = unpack(container, 2 if t == 0 else 4, self.fingerprint)
            except BitstreamError as err:
                raise BitstreamError(f"frame {first + t}: {err}") from None
            if t == 0:
                height, width, side_info = payload.height, payload.width, payload.side_info
            elif payload.side_info or (payload.height, payload.width) != (height, width):
                raise BitstreamError(f"frame {first + t}: P-frame header disagrees with its GOP's intra frame")
            z = (-(-height // self.stride), -(-width // self.stride))
            s = [[b] for b in payload.streams]
            strings.append(s if t == 0 else {"motion": s[:2], "residual": s[2:]})
            shapes.append(z if t == 0 else {"motion": z, "residual": z})
        if not side_info:  # the trained factors
            out = self.model.decompress(strings, shapes)
        else:
            with factors_applied(self.model, *decode_factors(self.model, side_info)):
                out = self.model.decompress(strings, shapes)
        return torch.cat([crop_to(f, height, width).clamp(0, 1) for f in out])
