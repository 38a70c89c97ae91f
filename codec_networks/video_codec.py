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
from vcmlab.errors import BitstreamError, ConfigError, InputError

HYPERPRIOR_STRIDE = 128  # ScaleSpaceFlow: 16 in the encoders, 8 more in the hyper-encoders (measured)


class VideoCodec(Protocol):
    """Codes a GOP, frames (T, 3, H, W) in [0, 1], into one self-contained file and back."""

    name: str

    def encode(self, frames: torch.Tensor) -> bytes: ...

    def decode(self, data: bytes) -> torch.Tensor: ...


class PixelFlowSSF(ScaleSpaceFlow):
    """ScaleSpaceFlow with its flow in pixel units: the same motion at any resolution."""

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
    """A ScaleSpaceFlow (or subclass) coding sequences: an intra frame every `intra_period` frames (None:
    only the first), the others predicted from the previous decoded frame. Frames are padded to
    multiples of 128 and cropped back."""

    def __init__(
        self,
        model: ScaleSpaceFlow,
        device: str | torch.device = "cpu",
        name: str = "ssf",
        intra_period: int | None = None,
    ):
        if intra_period is not None and (not isinstance(intra_period, int) or intra_period < 1):
            raise ConfigError(f"intra_period must be a positive integer or null, got {intra_period!r}")
        self.model = model.to(device).eval()
        self.device, self.name, self.intra_period = torch.device(device), name, intra_period
        self.model.update(force=True)
        self.fingerprint = fingerprint(self.model)

    @property
    def settings(self) -> dict:
        return {"model": type(self.model).__name__, "structure": "low-delay P", "intra_period": self.intra_period}

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> bytes:
        if frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
            raise InputError(f"a sequence is (T, 3, H, W) with T >= 1, got {tuple(frames.shape)}")
        count, _, height, width = frames.shape
        period = self.intra_period or count
        out = [write_varint(count), write_varint(period)]
        for start in range(0, count, period):
            gop = frames[start : start + period]
            strings, _ = self.model.compress([pad_to_multiple(f[None].to(self.device), HYPERPRIOR_STRIDE) for f in gop])
            for frame_strings in strings:  # intra: [y, z]; inter: {motion: [y, z], residual: [y, z]}
                streams = frame_strings if isinstance(frame_strings, list) else sum(frame_strings.values(), [])
                payload = pack(Payload(self.fingerprint, height, width, tuple(s[0] for s in streams)))
                out += [write_varint(len(payload)), payload]
        return b"".join(out)

    def payload_bytes(self, data: bytes) -> int:
        """The entropy-coded streams' bytes: the file less its framing, fingerprints and checksums."""
        kinds = frame_types(data)
        return sum(
            len(b) for t, f in enumerate(split_gop(data)) for b in unpack(f, 2 if kinds[t] == "I" else 4).streams
        )

    def frame_types(self, data: bytes) -> list[str]:
        return frame_types(data)

    def frame_sizes(self, data: bytes) -> list[int]:
        return frame_sizes(data)

    @torch.no_grad()
    def decode(self, data: bytes) -> torch.Tensor:
        frames = split_gop(data)
        if not frames:
            raise BitstreamError("sequence stream holds no frame")
        kinds, decoded = frame_types(data), []
        for t, kind in enumerate(kinds):
            if kind == "I":
                strings, shapes = [], []
            payload = unpack(frames[t], 2 if kind == "I" else 4)
            if payload.fingerprint != self.fingerprint:
                raise BitstreamError(f"frame {t} was written by another model: decode with the encoder's checkpoint")
            height, width = payload.height, payload.width
            z = (-(-height // HYPERPRIOR_STRIDE), -(-width // HYPERPRIOR_STRIDE))
            s = [[b] for b in payload.streams]
            strings.append(s if kind == "I" else {"motion": s[:2], "residual": s[2:]})
            shapes.append(z if kind == "I" else {"motion": z, "residual": z})
            if t + 1 == len(kinds) or kinds[t + 1] == "I":  # the GOP is complete
                decoded += [crop_to(f, height, width).clamp(0, 1) for f in self.model.decompress(strings, shapes)]
        return torch.cat(decoded).cpu()
