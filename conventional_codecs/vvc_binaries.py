"""VVC intra through external encoders: VTM (EncoderAppStatic) or VVenC (vvencapp).

No VVC encoder ships in any package registry: point the codec at a binary (`encoder_path`) or put it on
PATH. Encoding writes raw Y'CbCr planes made by conventional_codecs.colour (matrix, range, bit depth,
chroma format explicit; 4:4:4 with VTM only) and runs the encoder with an argument list (never a
shell). Decoding uses VTM's DecoderAppStatic when `decoder_path` is given, else FFmpeg's native VVC
decoder inside PyAV. Streams carry a 4-byte size prefix (odd sizes are padded for 4:2:0).

Anchor settings: VTM with the configuration file given (MPEG VCM: VTM's cfg/encoder_intra_vtm.cfg, the
CTC all-intra configuration); VVenC with its perceptual QP adaptation off (`--qpa 0`; vvencapp turns it
on by default, VTM has no such tool), unless `perceptual=true` names the perceptual variant.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import av

from conventional_codecs.base import check_int_range, from_uint8, pad_to_even, split_size, to_uint8, with_size
from conventional_codecs.colour import ColourFormat, planes_from_frame
from vcmlab.errors import BitstreamError, CodecError, ConfigError

DEFAULT_BINARIES = {"vtm": "EncoderAppStatic", "vvenc": "vvencapp"}


def find_binary(path_or_name: str, what: str) -> str:
    found = shutil.which(path_or_name)
    if found is None:
        raise CodecError(
            f"{what} binary {path_or_name!r} not found: build VTM (EncoderAppStatic/DecoderAppStatic) or VVenC "
            "(vvencapp) and pass its path (encoder_path=...) or put it on PATH; vcmlab never downloads it"
        )
    return found


def run_binary(command: list[str], timeout_s: float) -> None:
    """An external encoder/decoder, from an argument list (never a shell); its failure as a CodecError."""
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout_s)
    except subprocess.CalledProcessError as err:
        tail = (err.stderr or err.stdout or b"").decode(errors="replace")[-500:]
        raise CodecError(f"{Path(command[0]).name} failed (exit {err.returncode}): {tail}") from None
    except subprocess.TimeoutExpired:
        raise CodecError(f"{Path(command[0]).name} timed out after {timeout_s} s") from None


class VVCBinaryCodec:
    """encoder: 'vtm' (needs `config`, e.g. VTM's cfg/encoder_intra_vtm.cfg) or 'vvenc'. qp: 0-63."""

    def __init__(
        self,
        encoder: str = "vvenc",
        qp: int = 32,
        encoder_path: str | None = None,
        decoder_path: str | None = None,
        config: str | None = None,
        preset: str = "medium",
        timeout_s: float = 600.0,
        colour: dict | None = None,
        perceptual: bool = False,
    ):
        if encoder not in DEFAULT_BINARIES:
            raise ConfigError(f"VVCBinaryCodec encoder must be 'vtm' or 'vvenc', got {encoder!r}")
        if encoder == "vtm" and config is None:
            raise ConfigError("VTM needs config=<path to encoder_intra_vtm.cfg> (shipped with VTM)")
        qp = check_int_range(qp, 0, 63, "vvc qp")
        self.encoder, self.qp, self.config, self.preset, self.timeout_s = encoder, qp, config, preset, timeout_s
        self.colour = ColourFormat(**(colour or {}))
        if encoder == "vvenc" and self.colour.chroma != "420":
            raise ConfigError("VVenC codes 4:2:0 only: set colour.chroma=420, or use encoder=vtm for 4:4:4")
        if perceptual and encoder != "vvenc":
            raise ConfigError("perceptual=true is VVenC's QP adaptation; VTM has none")
        self.perceptual = perceptual
        self.encoder_path = find_binary(encoder_path or DEFAULT_BINARIES[encoder], f"VVC encoder ({encoder})")
        self.decoder_path = find_binary(decoder_path, "VVC decoder") if decoder_path else None
        self.name = f"vvc_{encoder}{'_qpa' if perceptual else ''}_qp{self.qp}"

    @property
    def settings(self) -> dict:
        command = self.encoder_command(Path("in.yuv"), Path("out.266"), 0, 0)
        return {
            "encoder": Path(self.encoder_path).name,
            "qp": self.qp,
            "command": [Path(command[0]).name, *command[1:]],
            "pix_fmt": self.colour.pix_fmt,
            "colour": self.colour.settings(),
        }

    def encoder_command(self, yuv: Path, bitstream: Path, width: int, height: int) -> list[str]:
        depth, chroma = self.colour.bit_depth, self.colour.chroma
        if self.encoder == "vtm":
            return [
                self.encoder_path,
                "-c",
                str(self.config),
                "-i",
                str(yuv),
                "-b",
                str(bitstream),
                "-wdt",
                str(width),
                "-hgt",
                str(height),
                "-fr",
                "1",
                "-f",
                "1",
                "-q",
                str(self.qp),
                f"--InputBitDepth={depth}",
                f"--InternalBitDepth={depth}",
                f"--OutputBitDepth={depth}",
                f"--InputChromaFormat={chroma}",
                f"--ChromaFormatIDC={chroma}",
                "--ConformanceWindowMode=1",
            ]
        return [
            self.encoder_path,
            "--input",
            str(yuv),
            "--size",
            f"{width}x{height}",
            "--format",
            "yuv420" if depth == 8 else "yuv420_10",
            "--framerate",
            "1",
            "--frames",
            "1",
            "--qp",
            str(self.qp),
            "--qpa",
            "1" if self.perceptual else "0",
            "--preset",
            self.preset,
            "--output",
            str(bitstream),
        ]

    def _run(self, command: list[str]) -> None:
        run_binary(command, self.timeout_s)

    def encode(self, image) -> bytes:
        rgb = to_uint8(image)
        height, width = rgb.shape[:2]
        rgb = pad_to_even(rgb) if self.colour.chroma == "420" else rgb
        planes = self.colour.to_planes(from_uint8(rgb))
        with tempfile.TemporaryDirectory() as tmp:
            yuv_path, bitstream = Path(tmp) / "in.yuv", Path(tmp) / "out.266"
            yuv_path.write_bytes(self.colour.raw_bytes(planes))
            self._run(self.encoder_command(yuv_path, bitstream, rgb.shape[1], rgb.shape[0]))
            return with_size(height, width, bitstream.read_bytes())

    def payload_bytes(self, data: bytes) -> int:
        return len(split_size(data, self.name)[2])  # the elementary stream; the size prefix is framing

    def decode(self, data: bytes):
        height, width, payload = split_size(data, self.name)
        with tempfile.TemporaryDirectory() as tmp:
            bitstream = Path(tmp) / "in.266"
            bitstream.write_bytes(payload)
            if self.decoder_path:
                even = self.colour.chroma == "420"
                padded_h, padded_w = (height + height % 2, width + width % 2) if even else (height, width)
                out = Path(tmp) / "out.yuv"
                self._run([self.decoder_path, "-b", str(bitstream), "-o", str(out), "-d", str(self.colour.bit_depth)])
                try:
                    planes = self.colour.planes_from_raw(out.read_bytes(), padded_h, padded_w)
                except ValueError as err:
                    raise CodecError(
                        f"{self.name}: {Path(self.decoder_path).name} wrote an unexpected frame: {err}"
                    ) from None
            else:
                try:
                    with av.open(str(bitstream), format="vvc") as container:
                        frames = [planes_from_frame(f, self.colour) for f in container.decode(video=0)]
                except (av.error.FFmpegError, ValueError) as err:
                    raise BitstreamError(f"{self.name}: cannot decode stream: {err}") from None
                if len(frames) != 1:
                    raise BitstreamError(f"{self.name}: stream decoded to {len(frames)} frames, expected 1")
                planes = frames[0]
        return self.colour.from_planes(planes)[:, :height, :width]
