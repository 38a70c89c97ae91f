"""An integrity check around the conventional streams vcm-eval writes.

A truncated or bit-flipped HEVC/AV1/JPEG stream often decodes to a plausible-looking wrong image
without an error. vcm-eval writes these files itself, so it wraps them as learned streams are:

    magic "VCMC" | version u8 | stream | crc32 u32 (of everything before it)

These 9 bytes are container, not codec payload: summaries report them apart (`container_bytes`), and
the rate that BD-rates compare (`bpp`) counts only the payload (`payload_bytes` of each codec).
"""

from __future__ import annotations

import struct
import zlib

import torch

from conventional_codecs.base import ImageCodec, settings_of
from vcmlab.errors import BitstreamError

MAGIC = b"VCMC"
VERSION = 1
OVERHEAD = len(MAGIC) + 1 + 4


def seal(stream: bytes) -> bytes:
    body = MAGIC + bytes([VERSION]) + stream
    return body + struct.pack(">I", zlib.crc32(body))


def open_sealed(data: bytes, name: str) -> bytes:
    """The stream inside, or BitstreamError for anything that is not an intact container."""
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC:
        raise BitstreamError(f"{name}: not a vcmlab conventional-codec stream (bad magic bytes)")
    if len(data) < OVERHEAD:
        raise BitstreamError(f"{name}: truncated stream ({len(data)} bytes)")
    if data[len(MAGIC)] != VERSION:
        raise BitstreamError(f"{name}: unsupported container version {data[len(MAGIC)]} (this build reads {VERSION})")
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError(f"{name}: checksum mismatch: the stream is truncated or corrupted")
    return body[len(MAGIC) + 1 :]


class SealedCodec:
    """Any ImageCodec with its streams sealed; decoding refuses a damaged file instead of guessing."""

    def __init__(self, inner: ImageCodec):
        self.inner, self.name = inner, inner.name

    @property
    def last_encode_info(self) -> dict:
        return getattr(self.inner, "last_encode_info", {})

    @property
    def settings(self) -> dict:
        return settings_of(self.inner)

    def encode(self, image: torch.Tensor) -> bytes:
        return seal(self.inner.encode(image))

    def decode(self, data: bytes) -> torch.Tensor:
        return self.inner.decode(open_sealed(data, self.name))

    def payload_bytes(self, data: bytes) -> int:
        return payload_bytes(self.inner, open_sealed(data, self.name))


def payload_bytes(codec, data: bytes) -> int:
    """The bytes of `data` that are codec payload (standard stream, side information), not framing."""
    measure = getattr(codec, "payload_bytes", None)
    return measure(data) if measure is not None else len(data)
