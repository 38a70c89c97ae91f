"""The codec interface shared by conventional anchors and learned codecs (codec_networks.LearnedCodec)."""

from __future__ import annotations

import struct
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from vcmlab.errors import BitstreamError, CodecError, ConfigError, InputError  # noqa: F401 (CodecError: re-exported)


@runtime_checkable
class ImageCodec(Protocol):
    name: str

    def encode(self, image: torch.Tensor) -> bytes:
        """One RGB image (3, H, W) in [0, 1] to a self-contained bitstream."""

    def decode(self, data: bytes) -> torch.Tensor:
        """The bitstream back to (3, H, W) in [0, 1], at the size that was encoded."""

    # Optional: `settings` -> dict, every encoder setting (written into the summaries).
    # Optional: `payload_bytes(data) -> int`, the bytes of `data` that are the codec's own payload
    # (what BD-rates compare), without the framing vcmlab adds (size prefixes, checksums). A codec
    # without it is all payload (e.g. a JPEG file). See conventional_codecs.container.payload_bytes.


def settings_of(codec) -> dict:
    """Every setting a codec (and the codecs it wraps) ran with, for the summaries; {} when it says none."""
    return dict(getattr(codec, "settings", None) or {})


def check_int_range(value, low: int, high: int, what: str) -> int:
    """`value` as an int in [low, high], or a ConfigError that names `what` (e.g. a ladder's QP)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != int(value)
        or not low <= value <= high
    ):
        raise ConfigError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise InputError(f"expected one RGB image of shape (3, H, W), got {tuple(image.shape)}")
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def pad_to_even(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) edge-replicated to even height and width, as 4:2:0 chroma subsampling needs."""
    height, width = rgb.shape[:2]
    return np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def from_uint8(array: np.ndarray) -> torch.Tensor:
    return (
        torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
    )  # a copy: decoders hand out read-only arrays


# A 4-byte size prefix, for streams that cannot carry the exact original size themselves (4:2:0 codecs
# need even sizes; the resize ladder codes a smaller image). Its bytes count in the rate like any other.
_SIZE = struct.Struct(">HH")


def with_size(height: int, width: int, payload: bytes) -> bytes:
    if max(height, width) > 0xFFFF:
        raise InputError(f"image {width}x{height} too large for the size prefix")
    return _SIZE.pack(height, width) + payload


def split_size(data: bytes, codec: str) -> tuple[int, int, bytes]:
    if len(data) < _SIZE.size:
        raise BitstreamError(f"{codec}: truncated stream ({len(data)} bytes)")
    height, width = _SIZE.unpack_from(data)
    return height, width, data[_SIZE.size :]
