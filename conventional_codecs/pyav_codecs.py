"""HEVC (libx265) and AV1 (SVT-AV1) all-intra through PyAV's bundled FFmpeg, on YUV 4:2:0, fixed QP.

RGB is converted to 8-bit YUV 4:2:0 with swscale (BT.601, limited range) and back after decoding.
Streams are raw elementary streams (Annex-B HEVC, AV1 OBUs) behind a 4-byte size prefix, because
4:2:0 needs even sizes and odd images are padded by edge replication.
"""
from __future__ import annotations

import io
import os

import av

from vcmlab.errors import ConfigError
from conventional_codecs.base import CodecError, check_int_range, from_uint8, pad_to_even, split_size, to_uint8, with_size

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration banner at info level

# codec -> (FFmpeg encoder, raw stream format, encoder options for a fixed QP and intra only)
CODECS = {
    "hevc": ("libx265", "hevc", lambda qp, preset: {"x265-params": f"qp={qp}:keyint=1:info=0:log-level=none", "preset": preset}),
    "av1": ("libsvtav1", "obu", lambda qp, preset: {"qp": str(qp), "preset": preset}),
}
QP_RANGE = {"hevc": (0, 51), "av1": (1, 63)}
MIN_SIZE = {"hevc": 16, "av1": 4}  # measured: libx265 refuses pictures under 16x16, SVT-AV1 under 4x4


class PyAVIntraCodec:
    """qp: HEVC 0-51 (MPEG VCM ladder 22..47), SVT-AV1 1-63. preset: x265 name or SVT-AV1 number."""

    def __init__(self, codec: str = "hevc", qp: int = 32, preset: str | int | None = None):
        if codec not in CODECS:
            raise ConfigError(f"PyAVIntraCodec codec must be one of {sorted(CODECS)}, got {codec!r}")
        self.encoder, self.stream_format, make_options = CODECS[codec]
        if self.encoder not in av.codecs_available:
            raise CodecError(f"this PyAV build has no {self.encoder} encoder; install the PyPI 'av' wheel, which bundles it")
        preset = preset if preset is not None else ("medium" if codec == "hevc" else 8)
        qp = check_int_range(qp, *QP_RANGE[codec], f"{codec} qp")
        self.options = make_options(qp, str(preset))
        self.codec, self.qp = codec, qp
        self.name = f"{codec}_qp{self.qp}"

    def encode(self, image) -> bytes:
        rgb = to_uint8(image)
        height, width = rgb.shape[:2]
        rgb = pad_to_even(rgb)
        if min(rgb.shape[:2]) < MIN_SIZE[self.codec]:
            raise CodecError(f"{self.name}: a {width}x{height} picture is too small for {self.encoder} (at least {MIN_SIZE[self.codec]}x{MIN_SIZE[self.codec]})")
        buffer = io.BytesIO()
        try:
            with av.open(buffer, "w", format=self.stream_format) as out:
                stream = out.add_stream(self.encoder, rate=1)
                stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
                stream.options = self.options
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                for packet in [*stream.encode(frame), *stream.encode(None)]:
                    out.mux(packet)
        except av.error.FFmpegError as err:
            raise CodecError(f"{self.name}: {self.encoder} refused the {width}x{height} picture with options {self.options}: {err}") from None
        return with_size(height, width, buffer.getvalue())

    def payload_bytes(self, data: bytes) -> int:
        return len(split_size(data, self.name)[2])  # the elementary stream; the size prefix is framing

    def decode(self, data: bytes):
        height, width, payload = split_size(data, self.name)
        try:
            with av.open(io.BytesIO(payload), format=self.stream_format) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        except (av.error.FFmpegError, ValueError) as err:
            raise CodecError(f"{self.name}: cannot decode stream: {err}") from None
        if len(frames) != 1 or frames[0].shape[0] < height or frames[0].shape[1] < width:
            raise CodecError(f"{self.name}: stream decoded to {len(frames)} frames, expected one of at least {width}x{height}")
        return from_uint8(frames[0][:height, :width])
