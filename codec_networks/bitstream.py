"""Container format for one coded image.

CompressAI's compress() returns bare rANS strings; a file of those decodes to garbage with the wrong
model or after a flipped bit. The container adds what a receiver needs to refuse such input:

    magic "VCML" | version u8 | model fingerprint 8 bytes | height u32 | width u32
    | n_shape u8 | shape dims u32... | n_streams u8 | stream lengths u32... | side-info length u32
    | streams | side info | crc32 u32

The CRC covers everything before it. Magic, version, fingerprint and CRC identify and protect the
stream but carry nothing the decoder needs (IDENTITY_BYTES); summaries count them as container, the
rest as payload. Side information of encoder-side methods (filter indices,
parameter updates, a bias-set index) travels in its own block, so its bytes count in the rate.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from vcmlab.errors import BitstreamError

MAGIC = b"VCML"
VERSION = 1
_FIXED = struct.Struct(">4sB8sII")
IDENTITY_BYTES = len(MAGIC) + 1 + 8 + 4




@dataclass(frozen=True)
class Payload:
    fingerprint: bytes  # 8 bytes identifying the exact model that wrote the streams
    height: int  # original image size, before padding
    width: int
    shape: tuple[int, ...]  # latent shape the entropy decoder needs (CompressAI's "shape")
    streams: tuple[bytes, ...]
    side_info: bytes = b""


def pack(payload: Payload) -> bytes:
    if len(payload.fingerprint) != 8:
        raise ValueError("fingerprint must be 8 bytes")
    parts = [
        _FIXED.pack(MAGIC, VERSION, payload.fingerprint, payload.height, payload.width),
        struct.pack(f">B{len(payload.shape)}I", len(payload.shape), *payload.shape),
        struct.pack(f">B{len(payload.streams)}I", len(payload.streams), *map(len, payload.streams)),
        struct.pack(">I", len(payload.side_info)),
        *payload.streams,
        payload.side_info,
    ]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


def unpack(data: bytes) -> Payload:
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not a vcmlab bitstream (bad magic bytes)")
    if len(data) < _FIXED.size + 4:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes is shorter than the header")
    if data[4] != VERSION:
        raise BitstreamError(f"unsupported bitstream version {data[4]} (this build reads {VERSION})")
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError("bitstream checksum mismatch: the file is truncated or corrupted")
    _, _, fingerprint, height, width = _FIXED.unpack_from(body, 0)
    pos = _FIXED.size
    try:
        shape, pos = _read_u32_list(body, pos)
        lengths, pos = _read_u32_list(body, pos)
        (side_length,) = struct.unpack_from(">I", body, pos)
    except struct.error as err:
        raise BitstreamError(f"malformed bitstream header: {err}") from None
    pos += 4
    if pos + sum(lengths) + side_length != len(body):
        raise BitstreamError(f"bitstream length mismatch: header announces {pos + sum(lengths) + side_length} bytes, got {len(body)}")
    streams = []
    for n in lengths:
        streams.append(body[pos : pos + n])
        pos += n
    return Payload(fingerprint, height, width, tuple(shape), tuple(streams), body[pos:])


def _read_u32_list(buf: bytes, pos: int) -> tuple[list[int], int]:
    (n,) = struct.unpack_from(">B", buf, pos)
    values = list(struct.unpack_from(f">{n}I", buf, pos + 1))
    return values, pos + 1 + 4 * n
