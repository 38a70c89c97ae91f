"""Container format for one coded image (version 4, 6 bytes of container on top of the payload).

CompressAI's compress() returns bare entropy-coded strings; a file of those decodes to garbage with the
wrong model or after a flipped bit. The container adds what a receiver needs to refuse such input, and
nothing the receiver can derive (the latent shape follows from the image size and the model's
stride, the last stream's length from the file's; a LearnedCodec writes a single stream shared by all
its entropy models, so it carries no stream length at all):

    tag u8 (0xA0 | version << 1 | has side info) | model id u8
    | varint height | varint width | varint length of every stream but the last
    | [varint side-info length, if has side info] | streams | side info | crc32 u32

The model's fingerprint (FINGERPRINT_BYTES, a hash of its weights) keys the CRC: the CRC is taken over
the fingerprint followed by everything before it, so a stream decodes only with the model that wrote
it, and corruption is caught as before, without the fingerprint's bytes in every file. The model id is
the fingerprint's first byte: it names the usual mistake (another checkpoint) with a specific error
before the CRC is checked; another model with the same first byte fails the CRC instead. Tag, model id
and CRC (IDENTITY_BYTES = 6) identify and protect the stream but carry nothing the decoder needs:
summaries count them as container, the rest (image size, stream lengths, the streams, side
information) as payload. A 640x480 image coded by a LearnedCodec costs 10 bytes beyond its
entropy-coded stream (version 3: 13, with the whole fingerprint). Side information of encoder-side
methods (filter indices, parameter updates, a bias-set index) travels in its own block, so its bytes
count in the rate.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from vcmlab.errors import BitstreamError

VERSION = 4
_TAG_MAGIC, _TAG_MASK = 0xA0, 0xF0
FINGERPRINT_BYTES = 4  # the model fingerprint that keys the CRC
IDENTITY_BYTES = 1 + 1 + 4  # tag, model id, CRC
_VERSION_1_MAGIC = b"VCML"
_OLD_VERSIONS = {
    2: "one rANS stream per entropy model, before the shared stream",
    3: "rANS-coded, with the whole model fingerprint, before the keyed checksum",
}


@dataclass(frozen=True)
class Payload:
    fingerprint: bytes  # FINGERPRINT_BYTES identifying the exact model that wrote (or reads) the streams
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
        bytes([_TAG_MAGIC | VERSION << 1 | side, payload.fingerprint[0]]),
        write_varint(payload.height),
        write_varint(payload.width),
        *(write_varint(len(s)) for s in payload.streams[:-1]),
        write_varint(len(payload.side_info)) if side else b"",
        *payload.streams,
        payload.side_info,
    ]
    body = b"".join(parts)
    return body + struct.pack(">I", _checksum(payload.fingerprint, body))


def _checksum(fingerprint: bytes, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(fingerprint))


def unpack(data: bytes, n_streams: int, fingerprint: bytes) -> Payload:
    """The payload of a stream written by the model with this `fingerprint` (FINGERPRINT_BYTES), which
    has `n_streams` entropy-coded streams; anything else is refused with a BitstreamError."""
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes")
    data = bytes(data)
    if data[:4] == _VERSION_1_MAGIC:
        raise BitstreamError(
            "a version-1 vcmlab bitstream (47-byte container, before the compact format): re-encode it with this vcmlab"
        )
    if not data or data[0] & _TAG_MASK != _TAG_MAGIC:
        raise BitstreamError("not a vcmlab bitstream (bad magic bits)")
    version = (data[0] >> 1) & 0x07
    if version in _OLD_VERSIONS:
        raise BitstreamError(
            f"a version-{version} vcmlab bitstream ({_OLD_VERSIONS[version]}): re-encode it with this vcmlab"
        )
    if version != VERSION:
        raise BitstreamError(f"unsupported bitstream version {version} (this build reads {VERSION})")
    if len(data) < IDENTITY_BYTES + 2:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes is shorter than the header")
    if data[1] != fingerprint[0]:
        raise BitstreamError(
            f"bitstream was written by another model (model id {data[1]:02x}, this decoder's is "
            f"{fingerprint[0]:02x}, fingerprint {fingerprint.hex()}): decode with the checkpoint that encoded it"
        )
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if _checksum(fingerprint, body) != crc:
        raise BitstreamError(
            "bitstream checksum mismatch: the file is truncated or corrupted, or was written by another "
            "model whose id byte matches this one's"
        )
    pos = 2
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
