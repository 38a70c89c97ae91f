"""Container format for one coded image (version 3, 9 bytes of container on top of the payload).

CompressAI's compress() returns bare rANS strings; a file of those decodes to garbage with the wrong
model or after a flipped bit. The container adds what a receiver needs to refuse such input, and
nothing the receiver can derive (the latent shape follows from the image size and the model's
stride, the last stream's length from the file's; a LearnedCodec writes a single stream shared by all
its entropy models, so it carries no stream length at all):

    tag u8 (0xA0 | version << 1 | has side info) | model fingerprint 4 bytes
    | varint height | varint width | varint length of every stream but the last
    | [varint side-info length, if has side info] | streams | side info | crc32 u32

The CRC covers everything before it. Tag, fingerprint and CRC (IDENTITY_BYTES = 9) identify and
protect the stream but carry nothing the decoder needs: summaries count them as container, the rest
(image size, stream lengths, the streams, side information) as payload. A 640x480 image coded by a
LearnedCodec costs 13 bytes beyond its rANS stream (version 2 wrote one stream per entropy model:
14-16 bytes, plus the second stream's 8-byte coder flush). Side information of encoder-side methods
(filter indices, parameter updates, a bias-set index) travels in its own block, so its bytes count in
the rate.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from vcmlab.errors import BitstreamError

VERSION = 3
_TAG_MAGIC, _TAG_MASK = 0xA0, 0xF0
FINGERPRINT_BYTES = 4
IDENTITY_BYTES = 1 + FINGERPRINT_BYTES + 4
_VERSION_1_MAGIC = b"VCML"


@dataclass(frozen=True)
class Payload:
    fingerprint: bytes  # FINGERPRINT_BYTES identifying the exact model that wrote the streams
    height: int  # original image size, before padding
    width: int
    streams: tuple[bytes, ...]
    side_info: bytes = b""


def write_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError(f"varint of a negative number {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    n, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 35:
            raise BitstreamError(f"malformed bitstream header: truncated or oversized {what}")
        byte = buf[pos]
        n |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return n, pos


def pack(payload: Payload) -> bytes:
    if len(payload.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes")
    if not payload.streams:
        raise ValueError("a payload needs at least one stream")
    side = bool(payload.side_info)
    parts = [
        bytes([_TAG_MAGIC | VERSION << 1 | side]),
        payload.fingerprint,
        write_varint(payload.height),
        write_varint(payload.width),
        *(write_varint(len(s)) for s in payload.streams[:-1]),
        write_varint(len(payload.side_info)) if side else b"",
        *payload.streams,
        payload.side_info,
    ]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


def unpack(data: bytes, n_streams: int) -> Payload:
    """The payload of a stream written for a model with `n_streams` entropy-coded streams."""
    data = bytes(data)
    if data[:4] == _VERSION_1_MAGIC:
        raise BitstreamError(
            "a version-1 vcmlab bitstream (47-byte container, before the compact format): re-encode it with this vcmlab"
        )
    if not data or data[0] & _TAG_MASK != _TAG_MAGIC:
        raise BitstreamError("not a vcmlab bitstream (bad magic bits)")
    version = (data[0] >> 1) & 0x07
    if version == 2:
        raise BitstreamError(
            "a version-2 vcmlab bitstream (one rANS stream per entropy model, before the shared stream): "
            "re-encode it with this vcmlab"
        )
    if version != VERSION:
        raise BitstreamError(f"unsupported bitstream version {version} (this build reads {VERSION})")
    if len(data) < IDENTITY_BYTES + 2:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes is shorter than the header")
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError("bitstream checksum mismatch: the file is truncated or corrupted")
    fingerprint, pos = body[1 : 1 + FINGERPRINT_BYTES], 1 + FINGERPRINT_BYTES
    height, pos = read_varint(body, pos, "height")
    width, pos = read_varint(body, pos, "width")
    lengths = []
    for i in range(n_streams - 1):
        length, pos = read_varint(body, pos, f"length of stream {i}")
        lengths.append(length)
    side_length = 0
    if body[0] & 1:
        side_length, pos = read_varint(body, pos, "side-information length")
    last = len(body) - pos - sum(lengths) - side_length
    if last < 0:
        raise BitstreamError(
            f"bitstream length mismatch: the header announces {sum(lengths) + side_length} bytes of streams, "
            f"{len(body) - pos} follow"
        )
    streams = []
    for n in [*lengths, last]:
        streams.append(body[pos : pos + n])
        pos += n
    return Payload(fingerprint, height, width, tuple(streams), body[pos:])
