"""HEVC (libx265) and AV1 (SVT-AV1) all-intra through PyAV's bundled FFmpeg, at a fixed QP.

The RGB image is converted to Y'CbCr by conventional_codecs.colour (matrix, range, bit depth and
chroma format explicit, default BT.601 limited 8-bit 4:2:0) and the planes go to the encoder as they
are; decoded planes come back the same way, so swscale's defaults never touch the pixels. Streams
are raw elementary streams (Annex-B HEVC, AV1 OBUs) behind a 4-byte size prefix, because 4:2:0 needs
even sizes and odd images are padded by edge replication.

Encoder settings are those of a PSNR/mAP anchor and are all listed in `settings` (and so in every
summary): x265 codes the intra picture at exactly the ladder's QP (ipratio=1: x265's default 1.4
would code QP N-3) with psycho-visual tuning and adaptive quantisation off; SVT-AV1 runs at a fixed
QP with PSNR tuning, its preset in the rate point's name.
"""

from __future__ import annotations

import io
import os

import av

from conventional_codecs.base import check_int_range, from_uint8, pad_to_even, split_size, to_uint8, with_size
from conventional_codecs.colour import ColourFormat, frame_from_planes, planes_from_frame
from vcmlab.errors import BitstreamError, CodecError, ConfigError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration banner at info level

X265_MATRIX = {"bt601": "smpte170m", "bt709": "bt709"}  # VUI signalling only: decoding uses `colour`


def x265_options(qp: int, preset: str, colour: ColourFormat, threads: int | None) -> dict:
    params = [
        f"qp={qp}",
        "keyint=1",
        "ipratio=1",
        "pbratio=1",  # the intra picture at exactly `qp`
        "psy-rd=0",
        "psy-rdoq=0",
        "aq-mode=0",  # no perceptual tuning in a PSNR/mAP anchor
        f"range={colour.range}",
        f"colormatrix={X265_MATRIX[colour.matrix]}",
        "info=0",
        "log-level=none",
    ]
    if threads is not None:  # the stream is the same for any count (measured)
        params += [f"pools={threads}", "frame-threads=1"]
    return {"x265-params": ":".join(params), "preset": str(preset)}


def svtav1_options(qp: int, preset: str, colour: ColourFormat, threads: int | None) -> dict:
    if colour.chroma != "420":
        raise ConfigError("SVT-AV1 codes 4:2:0 only: set colour.chroma=420")
    params = "tune=1" + (f":lp={threads}" if threads is not None else "")  # tune=1: PSNR; lp: threads
    return {"qp": str(qp), "preset": str(preset), "svtav1-params": params}


# codec -> (FFmpeg encoder, raw stream format, options builder, QP range, default preset)
CODECS = {
    "hevc": ("libx265", "hevc", x265_options, (0, 51), "medium"),
    "av1": ("libsvtav1", "obu", svtav1_options, (1, 63), 8),
}
MIN_SIZE = {"hevc": 16, "av1": 4}  # measured: libx265 refuses pictures under 16x16, SVT-AV1 under 4x4


class PyAVIntraCodec:
    """qp: HEVC 0-51 (MPEG VCM ladder 22..47), SVT-AV1 1-63. preset: x265 name or SVT-AV1 number
    (0 slowest/best .. 13). colour: ColourFormat settings (matrix, range, bit_depth, chroma).
    threads: the encoder's threads (None: its default, all cores); the stream does not depend on it."""

    def __init__(
        self,
        codec: str = "hevc",
        qp: int = 32,
        preset: str | int | None = None,
        colour: dict | None = None,
        threads: int | None = None,
    ):
        if codec not in CODECS:
            raise ConfigError(f"PyAVIntraCodec codec must be one of {sorted(CODECS)}, got {codec!r}")
        self.encoder, self.stream_format, make_options, qp_range, default_preset = CODECS[codec]
        if self.encoder not in av.codecs_available:
            raise CodecError(
                f"this PyAV build has no {self.encoder} encoder; install the PyPI 'av' wheel, which bundles it"
            )
        self.codec, self.qp = codec, check_int_range(qp, *qp_range, f"{codec} qp")
        self.preset = preset if preset is not None else default_preset
        self.colour = ColourFormat(**(colour or {}))
        self.threads = check_int_range(threads, 1, 256, f"{codec} threads") if threads is not None else None
        self.options = make_options(self.qp, self.preset, self.colour, threads)
        self.name = f"{codec}_qp{self.qp}" if codec == "hevc" else f"{codec}_p{self.preset}_qp{self.qp}"

    @property
    def settings(self) -> dict:
        return {
            "encoder": self.encoder,
            "qp": self.qp,
            "preset": self.preset,
            "threads": self.threads,
            "options": self.options,
            "pix_fmt": self.colour.pix_fmt,
            "colour": self.colour.settings(),
            "pyav": av.__version__,
        }

    def encode(self, image) -> bytes:
        rgb = to_uint8(image)
        height, width = rgb.shape[:2]
        if self.colour.chroma == "420":
            rgb = pad_to_even(rgb)
        if min(rgb.shape[:2]) < MIN_SIZE[self.codec]:
            raise CodecError(
                f"{self.name}: a {width}x{height} picture is too small for {self.encoder} (at least "
                f"{MIN_SIZE[self.codec]}x{MIN_SIZE[self.codec]})"
            )
        frame = frame_from_planes(self.colour.to_planes(from_uint8(rgb)), self.colour)
        buffer = io.BytesIO()
        try:
            with av.open(buffer, "w", format=self.stream_format) as out:
                stream = out.add_stream(self.encoder, rate=1)
                stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, self.colour.pix_fmt
                stream.options = self.options
                for packet in [*stream.encode(frame), *stream.encode(None)]:
                    out.mux(packet)
        except av.error.FFmpegError as err:
            raise CodecError(
                f"{self.name}: {self.encoder} refused the {width}x{height} picture with options {self.options}: {err}"
            ) from None
        return with_size(height, width, buffer.getvalue())

    def payload_bytes(self, data: bytes) -> int:
        return len(split_size(data, self.name)[2])  # the elementary stream; the size prefix is framing

    def decode(self, data: bytes):
        height, width, payload = split_size(data, self.name)
        try:
            with av.open(io.BytesIO(payload), format=self.stream_format) as container:
                frames = [planes_from_frame(f, self.colour) for f in container.decode(video=0)]
        except (av.error.FFmpegError, ValueError) as err:
            raise BitstreamError(f"{self.name}: cannot decode stream: {err}") from None
        if len(frames) != 1 or frames[0][0].shape[0] < height or frames[0][0].shape[1] < width:
            raise BitstreamError(
                f"{self.name}: stream decoded to {len(frames)} frames, expected one of at least {width}x{height}"
            )
        return self.colour.from_planes(frames[0])[:, :height, :width]
