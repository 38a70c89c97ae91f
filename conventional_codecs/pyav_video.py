"""Conventional video anchors through PyAV: x265 (HEVC) and SVT-AV1 in a low-delay P configuration
with a fixed intra period, the structure a learned P-frame codec is compared against, and x265 in a
random-access configuration (hierarchical B-pictures, closed GOPs).

Frames are converted by conventional_codecs.colour (as the image anchors: explicit matrix, range, bit
depth), coded as one elementary stream and decoded back plane for plane. Settings of a PSNR/mAP anchor,
all listed in `settings`: x265 at the ladder's QP for every picture (ipratio=pbratio=1: flat QP, no
per-layer offsets), no B-frames, no scene-cut or open-GOP intra insertion, psycho-visual tuning and
adaptive quantisation off; SVT-AV1 at a fixed QP, low-delay prediction structure, PSNR tuning, scene
detection off. Random access (x265): 7 B-pictures in a fixed hierarchical pyramid between P/I pictures
(the GOP 8 of HM's random-access configuration), the same flat QP, closed GOPs of `intra_period`.

The stream file: varint frame count, height, width, then the stream. `frame_types` and `frame_sizes`
give each picture's type and the bytes of the access unit that carried it, in display order (see
`decode_in_display_order`: with B-pictures the coding order differs).
"""

from __future__ import annotations

import io

import av
import numpy as np
import torch

from codec_networks.bitstream import read_varint, write_varint
from conventional_codecs.base import check_int_range, pad_to_even
from conventional_codecs.colour import ColourFormat, frame_from_planes, planes_from_frame
from conventional_codecs.pyav_codecs import X265_MATRIX
from vcmlab.errors import BitstreamError, CodecError, ConfigError, InputError

PICTURE_TYPES = {1: "I", 2: "P", 3: "B"}  # FFmpeg's AVPictureType, as PyAV reports it
ENCODERS = {"hevc": ("libx265", "hevc", (0, 51), "medium"), "av1": ("libsvtav1", "obu", (1, 63), 8)}
STRUCTURES = {"low_delay": "ldp", "random_access": "ra"}
RA_B_PICTURES = 7  # between two anchor pictures: HM's random-access GOP of 8


def picture_type(frame) -> str:
    """'I', 'P' or 'B' as the decoder reports it; a decoder that reports none: 'I' for key pictures."""
    kind = PICTURE_TYPES.get(int(frame.pict_type))
    return kind if kind is not None else ("I" if frame.key_frame else "inter")


def decode_in_display_order(stream: bytes, stream_format: str, read_planes) -> list[tuple[list, str, int]]:
    """(planes, picture type, bytes of its access unit) per picture of a raw elementary stream, in
    display order. The demuxer's parser splits the stream into access units (coding order); each is
    tagged with its coding index as timestamp, which the decoder hands to the picture it outputs, so a
    reordered (random-access) picture keeps its own unit's size. The sizes add up to the stream."""
    with av.open(io.BytesIO(stream), format=stream_format) as container:
        sizes, pictures = [], []
        for packet in container.demux(video=0):
            if packet.size:  # the last, empty packet flushes the decoder
                packet.pts = packet.dts = len(sizes)
                sizes.append(packet.size)
            pictures += [(frame.pts, read_planes(frame), picture_type(frame)) for frame in packet.decode()]
    if sorted(pts for pts, _, _ in pictures) != list(range(len(sizes))):
        raise BitstreamError(
            f"{len(sizes)} access units decoded to {len(pictures)} pictures: a unit without exactly one picture"
        )
    return [(planes, kind, sizes[pts]) for pts, planes, kind in pictures]


def coding_options(
    codec: str,
    qp: int,
    preset,
    intra_period: int,
    colour: ColourFormat,
    intra_qp: int | None = None,
    structure: str = "low_delay",
) -> dict:
    if codec == "hevc":
        # x265 codes I pictures at qp - 6·log2(ipratio), rounded: ipratio 1 for a flat QP, else the
        # ratio that lands exactly on intra_qp
        ipratio = 1 if intra_qp is None else 2 ** ((qp - intra_qp) / 6)
        pictures = ["bframes=0"]
        if structure == "random_access":  # a fixed pyramid: no adaptive B-frame placement; x265 needs a
            # lookahead longer than the B run (medium's 20; the fast presets' are shorter)
            pictures = [f"bframes={RA_B_PICTURES}", "b-pyramid=1", "b-adapt=0", "rc-lookahead=20"]
        params = [
            f"qp={qp}",
            f"keyint={intra_period}",
            f"min-keyint={intra_period}",
            "scenecut=0",
            "open-gop=0",
            *pictures,
            f"ipratio={ipratio:.9g}",
            "pbratio=1",
            "psy-rd=0",
            "psy-rdoq=0",
            "aq-mode=0",
            f"range={colour.range}",
            f"colormatrix={X265_MATRIX[colour.matrix]}",
            "info=0",
            "log-level=none",
        ]
        return {"x265-params": ":".join(params), "preset": str(preset)}
    params = [f"keyint={intra_period}", "pred-struct=1", "scd=0", "tune=1"]
    return {"qp": str(qp), "preset": str(preset), "svtav1-params": ":".join(params)}


class ElementaryStreamFile:
    """What the video anchors share: their file (varint frame count, height, width, then the coded
    elementary stream) and the last stream's decoded pictures ((planes, type, access-unit bytes) in
    display order), which decode, decode_planes, frame_types and frame_sizes of one evaluated sequence
    all read. Subclasses have `name`, `colour`, `stream_format` and `_pictures(stream, count, height,
    width)`."""

    def _source_planes(self, image: torch.Tensor) -> list[np.ndarray]:
        """One RGB frame (3, H, W) in [0, 1] as 8-bit samples, padded to even sides, in `colour`'s planes."""
        rgb = pad_to_even((image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
        return self.colour.to_planes(torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1))

    @staticmethod
    def _file(count: int, height: int, width: int, stream: bytes) -> bytes:
        return write_varint(count) + write_varint(height) + write_varint(width) + stream

    def _split(self, data: bytes) -> tuple[int, int, int, bytes]:
        count, pos = read_varint(data, 0, "frame count")
        height, pos = read_varint(data, pos, "height")
        width, pos = read_varint(data, pos, "width")
        return count, height, width, data[pos:]

    def payload_bytes(self, data: bytes) -> int:
        return len(self._split(data)[3])

    def _decoded(self, data: bytes) -> tuple[list, int, int]:
        cached = getattr(self, "_last_decoded", None)
        if cached is not None and cached[0] == data:
            return cached[1]
        self._last_decoded = None  # a failed decode must not leave the previous stream's frames
        count, height, width, stream = self._split(data)
        pictures = self._pictures(stream, count, height, width)
        if len(pictures) != count:
            raise BitstreamError(f"{self.name}: stream decoded to {len(pictures)} frames, expected {count}")
        result = (pictures, height, width)
        self._last_decoded = (bytes(data), result)
        return result

    def _decoded_in_order(self, stream: bytes, read_planes) -> list[tuple[list, str, int]]:
        try:
            return decode_in_display_order(stream, self.stream_format, read_planes)
        except (av.error.FFmpegError, ValueError, BitstreamError) as err:
            raise BitstreamError(f"{self.name}: cannot decode stream: {err}") from None

    def decode(self, data: bytes) -> torch.Tensor:
        frames, height, width = self._decoded(data)
        return torch.stack([self.colour.from_planes(planes)[:, :height, :width] for planes, _, _ in frames])

    def decode_planes(self, data: bytes) -> list[list[np.ndarray]]:
        """The decoder's own [Y, Cb, Cr] planes per frame at the source's bit depth, cropped to the coded
        size: what JVET's YUV PSNR compares against the source planes."""
        frames, height, width = self._decoded(data)
        chroma = (height, width) if self.colour.chroma == "444" else (-(-height // 2), -(-width // 2))
        sizes = [(height, width), chroma, chroma]
        return [[p[:h, :w] for p, (h, w) in zip(planes, sizes)] for planes, _, _ in frames]

    def frame_types(self, data: bytes) -> list[str]:
        """'I', 'P' or 'B' per decoded picture, in display order."""
        return [kind for _, kind, _ in self._decoded(data)[0]]

    def frame_sizes(self, data: bytes) -> list[int]:
        """Bytes of each picture's access unit in the stream, in display order (they add up to it)."""
        return [size for _, _, size in self._decoded(data)[0]]


class PyAVVideoCodec(ElementaryStreamFile):
    """codec: hevc | av1; qp: HEVC 0-51, SVT-AV1 1-63; intra_period: frames from one intra picture to
    the next (the learned codec's GOP); colour: ColourFormat settings; intra_qp (HEVC): the QP of the
    intra pictures when it should differ from qp (NN-VVC's regenerated reference), else flat;
    structure: low_delay, or random_access (HEVC)."""

    def __init__(
        self,
        codec: str = "hevc",
        qp: int = 32,
        intra_period: int = 8,
        preset: str | int | None = None,
        colour: dict | None = None,
        intra_qp: int | None = None,
        structure: str = "low_delay",
    ):
        if codec not in ENCODERS:
            raise ConfigError(f"PyAVVideoCodec codec must be one of {sorted(ENCODERS)}, got {codec!r}")
        self.encoder, self.stream_format, qp_range, default_preset = ENCODERS[codec]
        if self.encoder not in av.codecs_available:
            raise CodecError(f"this PyAV build has no {self.encoder} encoder; install the PyPI 'av' wheel")
        self.codec, self.qp = codec, check_int_range(qp, *qp_range, f"{codec} qp")
        self.intra_period = check_int_range(intra_period, 1, 10_000, "intra_period")
        self.preset = preset if preset is not None else default_preset
        self.colour = ColourFormat(**(colour or {}))
        if self.colour.chroma != "420":
            raise ConfigError("the video anchors code 4:2:0: set colour.chroma=420")
        if intra_qp is not None and (codec != "hevc" or not 0 <= intra_qp <= self.qp):
            raise ConfigError(f"intra_qp is for hevc, between 0 and qp={self.qp}; got {intra_qp!r} for {codec}")
        if structure not in STRUCTURES or (structure == "random_access" and codec != "hevc"):
            raise ConfigError(f"structure: low_delay, or random_access for hevc; got {structure!r} for {codec}")
        self.intra_qp, self.structure = intra_qp, structure
        self.options = coding_options(codec, self.qp, self.preset, self.intra_period, self.colour, intra_qp, structure)
        self.name = f"{codec}_{STRUCTURES[structure]}_ip{self.intra_period}_qp{self.qp}"

    @property
    def settings(self) -> dict:
        return {
            "encoder": self.encoder,
            "structure": "low-delay P" if self.structure == "low_delay" else "random access (hierarchical B)",
            "qp": self.qp,
            "intra_qp": self.qp if self.intra_qp is None else self.intra_qp,
            "intra_period": self.intra_period,
            "preset": self.preset,
            "options": self.options,
            "pix_fmt": self.colour.pix_fmt,
            "colour": self.colour.settings(),
            "pyav": av.__version__,
        }

    def encode(self, frames: torch.Tensor) -> bytes:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise InputError(f"a sequence is (T, 3, H, W), got {tuple(frames.shape)}")
        count, _, height, width = frames.shape
        buffer = io.BytesIO()
        try:
            with av.open(buffer, "w", format=self.stream_format) as out:
                stream = None
                for t, image in enumerate(frames):
                    frame = frame_from_planes(self._source_planes(image), self.colour)
                    frame.pts = t
                    if stream is None:
                        stream = out.add_stream(self.encoder, rate=25)
                        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, self.colour.pix_fmt
                        stream.options = self.options
                    for packet in stream.encode(frame):
                        out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
        except av.error.FFmpegError as err:
            raise CodecError(f"{self.name}: {self.encoder} refused the {width}x{height} sequence: {err}") from None
        return self._file(count, height, width, buffer.getvalue())

    def _pictures(self, stream: bytes, count: int, height: int, width: int) -> list[tuple[list, str, int]]:
        return self._decoded_in_order(stream, lambda frame: planes_from_frame(frame, self.colour))
