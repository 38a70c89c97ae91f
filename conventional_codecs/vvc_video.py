"""VVC video anchors through external encoders: VTM (EncoderAppStatic) or VVenC (vvencFFapp), in a
low-delay or a random-access configuration.

No VVC encoder ships in any package registry: point the codec at a binary (`encoder_path`) or put it on
PATH, and give the structure's configuration file, as JVET's common test conditions do:
- VTM: cfg/encoder_lowdelay_P_vtm.cfg (or _lowdelay_vtm.cfg, low-delay B) / cfg/encoder_randomaccess_vtm.cfg;
- VVenC: cfg/experimental/lowdelay_<preset>.cfg / cfg/randomaccess_<preset>.cfg (vvencFFapp, the
  full-featured application: vvencapp has no low-delay structure).
The file sets the GOP, its QP offsets and the tools; the command line sets only what the sequence and
the rate point decide: input size and bit depth (internal bit depth 10 for 8-bit sources, as the CTC),
frame count, base QP, intra period, and for VVenC its perceptual QP adaptation off (`PerceptQPA=0`;
VTM has no such tool). A low-delay sequence with an intra period refreshes with CRA pictures (no
later picture references one before it; VTM refuses periodic IDR unless the period exceeds the GOP).

Frames are converted to Y'CbCr by conventional_codecs.colour (explicit matrix, range, bit depth), written
as one raw .yuv file and coded by one encoder run. Decoding: VTM's DecoderAppStatic when `decoder_path`
is given, else FFmpeg's native VVC decoder inside PyAV (10-bit output rounded to the source's depth as
VTM's decoder does with `-d`). Per-picture types and access-unit sizes always come from PyAV's VVC
parser, in display order. The stream file: varint frame count, height, width, then the elementary stream.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

from conventional_codecs.base import check_int_range
from conventional_codecs.colour import ColourFormat, frame_planes
from conventional_codecs.pyav_video import STRUCTURES, ElementaryStreamFile
from conventional_codecs.vvc_binaries import find_binary, run_binary
from vcmlab.errors import BitstreamError, CodecError, ConfigError, InputError

DEFAULT_ENCODERS = {"vtm": "EncoderAppStatic", "vvenc": "vvencFFapp"}
EXAMPLE_CONFIGS = {
    ("vtm", "low_delay"): "cfg/encoder_lowdelay_P_vtm.cfg",
    ("vtm", "random_access"): "cfg/encoder_randomaccess_vtm.cfg",
    ("vvenc", "low_delay"): "cfg/experimental/lowdelay_medium.cfg",
    ("vvenc", "random_access"): "cfg/randomaccess_medium.cfg",
}


def read_cfg(path: str) -> dict[str, str]:
    """The `Key : value` lines of a VTM/VVenC configuration file (comments dropped)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as err:
        raise ConfigError(f"VVC configuration file {path!r}: {err.strerror}") from None
    entries = {}
    for line in text.splitlines():
        key, sep, value = line.split("#", 1)[0].partition(":")
        if sep and key.strip():
            entries[key.strip()] = value.strip()
    return entries


def check_structure(cfg: dict[str, str], path: str, structure: str, intra_period: int | None) -> None:
    """Refuse a configuration file of the other structure, or an intra period its GOP cannot have."""
    first = cfg.get("Frame1", "").split()
    if len(first) > 1 and first[1].lstrip("-").isdigit():
        low_delay = int(first[1]) == 1  # low delay codes POC 1 first; random access a later anchor
        if low_delay != (structure == "low_delay"):
            found = "low-delay" if low_delay else "random-access"
            raise ConfigError(f"{path} is a {found} configuration (Frame1 codes POC {first[1]}), not {structure}")
    gop = cfg.get("GOPSize", "")  # VTM and VVenC refuse other intra periods (HM's rule), for either structure
    if intra_period is not None and gop.isdigit() and intra_period % int(gop):
        raise ConfigError(f"intra_period={intra_period} is not a multiple of {path}'s GOPSize {gop}")


def round_to_depth(plane: np.ndarray, coded: int, wanted: int) -> np.ndarray:
    """A decoded plane from the coded bit depth to the source's, rounding as VTM's decoder output."""
    if coded == wanted:
        return plane
    if coded < wanted:
        raise BitstreamError(f"the stream is {coded}-bit, the source {wanted}-bit")
    shift = coded - wanted
    rounded = (plane.astype(np.int32) + (1 << (shift - 1))) >> shift
    return np.minimum(rounded, (1 << wanted) - 1).astype(np.uint8 if wanted == 8 else np.uint16)


class VVCVideoCodec(ElementaryStreamFile):
    """encoder: vtm | vvenc; structure: low_delay | random_access; config: the structure's .cfg file
    (required); qp: the base QP, 0-63; intra_period: frames from one intra picture to the next (null:
    the configuration file's); colour: ColourFormat settings (4:2:0)."""

    stream_format = "vvc"  # FFmpeg's raw VVC demuxer: splits the stream into access units

    def __init__(
        self,
        encoder: str = "vvenc",
        structure: str = "random_access",
        config: str | None = None,
        qp: int = 32,
        intra_period: int | None = 32,
        encoder_path: str | None = None,
        decoder_path: str | None = None,
        internal_bit_depth: int = 10,
        frame_rate: int = 25,
        timeout_s: float = 3600.0,
        colour: dict | None = None,
    ):
        if encoder not in DEFAULT_ENCODERS:
            raise ConfigError(f"VVCVideoCodec encoder must be 'vtm' or 'vvenc', got {encoder!r}")
        if structure not in STRUCTURES:
            raise ConfigError(f"VVCVideoCodec structure must be one of {sorted(STRUCTURES)}, got {structure!r}")
        if config is None:
            raise ConfigError(
                f"the VVC {structure} anchor needs codec.codec.config=<the .cfg file, e.g. "
                f"{EXAMPLE_CONFIGS[encoder, structure]} of your {encoder.upper()} checkout>"
            )
        self.encoder, self.structure, self.config = encoder, structure, str(config)
        self.qp = check_int_range(qp, 0, 63, "vvc qp")
        self.intra_period = None if intra_period is None else check_int_range(intra_period, 1, 10_000, "intra_period")
        self.internal_bit_depth = check_int_range(internal_bit_depth, 8, 16, "internal_bit_depth")
        self.frame_rate = check_int_range(frame_rate, 1, 1000, "frame_rate")
        self.colour = ColourFormat(**(colour or {}))
        if self.colour.chroma != "420":
            raise ConfigError("the video anchors code 4:2:0: set colour.chroma=420")
        self.config_entries = read_cfg(self.config)
        check_structure(self.config_entries, self.config, structure, self.intra_period)
        self.config_sha256 = hashlib.sha256(Path(self.config).read_bytes()).hexdigest()
        self.timeout_s = timeout_s
        self.encoder_path = find_binary(encoder_path or DEFAULT_ENCODERS[encoder], f"VVC encoder ({encoder})")
        self.decoder_path = find_binary(decoder_path, "VVC decoder") if decoder_path else None
        period = "cfg" if self.intra_period is None else self.intra_period
        self.name = f"vvc_{encoder}_{STRUCTURES[structure]}_ip{period}_qp{self.qp}"

    @property
    def settings(self) -> dict:
        command = self.encoder_command(Path("in.yuv"), Path("out.266"), 0, 0, 0)
        return {
            "encoder": Path(self.encoder_path).name,
            "structure": self.structure,
            "qp": self.qp,
            "intra_period": self.config_entries.get("IntraPeriod") if self.intra_period is None else self.intra_period,
            "config": Path(self.config).name,
            "config_sha256": self.config_sha256,
            "command": [Path(command[0]).name, *command[1:]],
            "decoder": Path(self.decoder_path).name if self.decoder_path else f"PyAV {av.__version__} (FFmpeg vvc)",
            "pix_fmt": self.colour.pix_fmt,
            "colour": self.colour.settings(),
        }

    def encoder_command(self, yuv: Path, bitstream: Path, width: int, height: int, frames: int) -> list[str]:
        depth = self.colour.bit_depth
        common = [
            f"--InputBitDepth={depth}",
            f"--InternalBitDepth={self.internal_bit_depth}",
            f"--OutputBitDepth={depth}",
            f"--FrameRate={self.frame_rate}",
            f"--FramesToBeEncoded={frames}",
            f"--QP={self.qp}",
            "--ConformanceWindowMode=1",  # pad to the minimum CU size, crop back on output
            f"--SourceWidth={width}",
            f"--SourceHeight={height}",
        ]
        if self.intra_period is not None:
            common.append(f"--IntraPeriod={self.intra_period}")
            if self.structure == "low_delay":  # the low-delay files have no refresh (intra only at POC 0)
                common.append(f"--DecodingRefreshType={1 if self.encoder == 'vtm' else 'cra'}")
        own = "--InputChromaFormat=420" if self.encoder == "vtm" else "--PerceptQPA=0"  # VTM has no QPA
        return [self.encoder_path, "-c", self.config, "-i", str(yuv), "-b", str(bitstream), *common, own]

    def encode(self, frames: torch.Tensor) -> bytes:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise InputError(f"a sequence is (T, 3, H, W), got {tuple(frames.shape)}")
        count, _, height, width = frames.shape
        with tempfile.TemporaryDirectory() as tmp:
            yuv_path, bitstream = Path(tmp) / "in.yuv", Path(tmp) / "out.266"
            with yuv_path.open("wb") as out:
                for image in frames:
                    out.write(self.colour.raw_bytes(self._source_planes(image)))
            padded_h, padded_w = height + height % 2, width + width % 2
            run_binary(self.encoder_command(yuv_path, bitstream, padded_w, padded_h, count), self.timeout_s)
            if not bitstream.is_file():
                raise CodecError(f"{self.name}: {Path(self.encoder_path).name} wrote no bitstream")
            stream = bitstream.read_bytes()
        return self._file(count, height, width, stream)

    def _pictures(self, stream: bytes, count: int, height: int, width: int) -> list[tuple[list, str, int]]:
        depth = self.colour.bit_depth

        def planes(frame) -> list[np.ndarray]:
            coded = 10 if "10" in frame.format.name else 8
            if not frame.format.name.startswith("yuv420p") or coded not in (8, 10):
                raise BitstreamError(f"{self.name}: the decoder returned {frame.format.name}, not 4:2:0")
            return [round_to_depth(p, coded, depth) for p in frame_planes(frame, coded)]

        pictures = self._decoded_in_order(stream, planes)
        if self.decoder_path and len(pictures) == count:  # the reference decoder's pictures; PyAV's parse
            reference = self._reference_decode(stream, count, height, width)  # still gives types and sizes
            pictures = [(planes, kind, size) for planes, (_, kind, size) in zip(reference, pictures, strict=True)]
        return pictures

    def _reference_decode(self, stream: bytes, count: int, height: int, width: int) -> list[list[np.ndarray]]:
        """The pictures DecoderAppStatic writes (display order, the source's bit depth via -d)."""
        padded_h, padded_w = height + height % 2, width + width % 2
        frame_bytes = (padded_h * padded_w * 3 // 2) * (2 if self.colour.bit_depth > 8 else 1)
        with tempfile.TemporaryDirectory() as tmp:
            bitstream, out = Path(tmp) / "in.266", Path(tmp) / "out.yuv"
            bitstream.write_bytes(stream)
            command = [self.decoder_path, "-b", str(bitstream), "-o", str(out), "-d", str(self.colour.bit_depth)]
            run_binary(command, self.timeout_s)
            raw = out.read_bytes() if out.is_file() else b""
        if len(raw) != count * frame_bytes:
            raise CodecError(
                f"{self.name}: {Path(self.decoder_path).name} wrote {len(raw)} bytes, expected {count} frames of "
                f"{padded_w}x{padded_h} ({count * frame_bytes} bytes)"
            )
        chunks = [raw[t * frame_bytes : (t + 1) * frame_bytes] for t in range(count)]
        return [self.colour.planes_from_raw(chunk, padded_h, padded_w) for chunk in chunks]
