"""x265 coding frames 1..N predicted from a picture both ends already hold (NN-VVC's external reference).

The paper modifies VTM so that its first reference picture is the learned codec's reconstruction. No
library encoder takes a picture into its reference buffer, so this substitute needs no modified
encoder: the sender codes [reference, x1, ..., xN] in one low-delay-P x265 run (one intra picture,
then P pictures only) and transmits only the units after the reference's. x265 is deterministic, and
the reference coded alone with the same settings is byte for byte the start of that stream (checked
at every encode: the sender fails loudly if not), so the receiver regenerates those units by coding
the reference it reconstructed itself, splices them in front of the transmitted ones and decodes.
The regenerated units are never sent and cost nothing, so the reference is coded at `intra_qp` (0 by
default, the finest x265 allows) to bring the picture the P frames predict from as close to the
supplied one as the encoder permits.

What it does not do, compared with the modified VTM: the reference passes through x265's own intra
coding (4:2:0, 8 bits, QP `intra_qp`) before it is a reference, so the P frames predict from that
reconstruction, not from the supplied picture itself (`reference_psnr` measures the difference); and
sender and receiver must run the same x265 build with the same settings. The transmitted stream:

    varint N | crc32 of the settings | crc32 of the regenerated units | the units of x1..xN | crc32 of all before

so a receiver with other settings, another x265 or another reference, and a damaged stream, fail with
a clear error instead of decoding garbage. Every byte the receiver is given is counted.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import av
import torch

from codec_networks.bitstream import read_varint, write_varint
from conventional_codecs.pyav_video import PyAVVideoCodec
from vcm_metrics import psnr
from vcmlab.errors import BitstreamError, CodecError, InputError

NO_INTRA = 10_000  # the intra period: one intra picture (the reference) per sequence
CHECK_BYTES = 8  # the settings' and the regenerated units' CRCs


class SeededReferenceCodec:
    name = "x265_seeded"

    def __init__(self, qp: int = 32, intra_qp: int = 0, preset: str = "medium", colour: dict | None = None):
        self.inner = PyAVVideoCodec("hevc", qp, NO_INTRA, preset, colour, intra_qp=intra_qp)
        self.colour = self.inner.colour
        self.name = f"x265_seeded_qp{qp}_iqp{intra_qp}"
        self._settings_crc = zlib.crc32(json.dumps(self.settings, sort_keys=True, default=str).encode())

    @property
    def settings(self) -> dict:
        return self.inner.settings | {"structure": "low-delay P from a regenerated reference picture"}

    def _stream(self, frames: torch.Tensor) -> bytes:
        return self.inner._split(self.inner.encode(frames))[3]

    def encode(self, reference: torch.Tensor, frames: torch.Tensor) -> bytes:
        """reference (3, H, W) and frames (N, 3, H, W) in [0, 1], N >= 1."""
        if reference.dim() != 3 or frames.dim() != 4 or frames.shape[0] < 1 or frames.shape[1:] != reference.shape:
            raise InputError(
                f"a reference (3, H, W) and frames (N, 3, H, W) of its size, got {tuple(reference.shape)} and "
                f"{tuple(frames.shape)}"
            )
        if frames.shape[0] >= NO_INTRA:
            raise InputError(f"at most {NO_INTRA - 1} frames per reference, got {frames.shape[0]}")
        full = self._stream(torch.cat([reference[None], frames]))
        units = self._stream(reference[None])
        if not full.startswith(units):
            raise CodecError(
                "x265 coded the reference differently alone than at the start of the sequence: the receiver "
                "could not regenerate it (a non-deterministic x265 build or setting)"
            )
        body = write_varint(frames.shape[0]) + struct.pack(">II", self._settings_crc, zlib.crc32(units))
        body += full[len(units) :]
        return body + struct.pack(">I", zlib.crc32(body))

    def _spliced(self, reference: torch.Tensor, data: bytes) -> tuple[int, bytes, bytes]:
        """(N, the spliced stream, the regenerated units)."""
        if len(data) < CHECK_BYTES + 6 or zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
            raise BitstreamError(f"{self.name}: checksum mismatch: the stream is truncated or corrupted")
        data = data[:-4]
        count, pos = read_varint(data, 0, "frame count")
        settings_crc, units_crc = struct.unpack(">II", data[pos : pos + CHECK_BYTES])
        if settings_crc != self._settings_crc:
            raise BitstreamError(f"{self.name}: the stream was written with other x265 settings or another build")
        units = self._stream(reference[None])
        if zlib.crc32(units) != units_crc:
            raise BitstreamError(
                f"{self.name}: the regenerated reference differs from the sender's: the receiver's reference "
                "picture (learned decode, adapter) or its x265 is not the sender's"
            )
        return count, units + data[pos + CHECK_BYTES :], units

    def decode_with_reference(self, reference: torch.Tensor, data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
        """(frames (N, 3, H, W), the reference as x265 reconstructed it: what they were predicted from)."""
        count, stream, _ = self._spliced(reference, data)
        decoded = self.inner.decode(write_varint(count + 1) + self._size(reference) + stream)
        return decoded[1:], decoded[0]

    def reference_psnr(self, reference: torch.Tensor) -> float:
        """RGB PSNR of x265's reconstruction of the reference against the reference itself."""
        coded = self.inner.encode(reference[None])
        return float(psnr(self.inner.decode(coded), reference[None].clamp(0, 1)))

    def decode(self, reference: torch.Tensor, data: bytes) -> torch.Tensor:
        return self.decode_with_reference(reference, data)[0]

    def frame_sizes(self, reference: torch.Tensor, data: bytes) -> list[int]:
        """Transmitted bytes of each of frames 1..N (their packets); the header is not in any."""
        _, stream, units = self._spliced(reference, data)
        with av.open(io.BytesIO(stream), format="hevc") as container:
            sizes = [p.size for p in container.demux(video=0) if p.size]
        if sum(sizes[1:]) != len(stream) - len(units):
            raise BitstreamError(f"{self.name}: the spliced stream does not split at the reference's units")
        return sizes[1:]

    def _size(self, reference: torch.Tensor) -> bytes:
        return write_varint(reference.shape[-2]) + write_varint(reference.shape[-1])
