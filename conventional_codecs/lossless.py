"""Lossless image formats, the anchors of the lossless evaluation (vcm-eval codec=lossless).

Each codes an 8-bit array (H, W) (grayscale) or (H, W, 3) (RGB) into the standard's own file and back;
the evaluation compares every decode with the input byte for byte. Settings are each format's
strongest common one, so that the learned model is measured against anchors at their best:
PNG at zlib level 9 with Pillow's filter search (optimize), WebP lossless at effort 100 / method 6,
JPEG XL lossless (modular, distance 0) at effort 9, JPEG-LS (near = 0, CharLS) and JPEG 2000 with the
reversible 5/3 wavelet and colour transform (OpenJPEG). The last three come from `imagecodecs`
(`pip install 'vcmlab[lossless]'`; `make install` installs it).
"""

from __future__ import annotations

import io
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from vcmlab.errors import BitstreamError, CodecError, ConfigError


class LosslessImageCodec(Protocol):
    name: str
    extension: str  # of the file the evaluation writes, so that it opens in any viewer

    def encode(self, array: np.ndarray) -> bytes: ...

    def decode(self, data: bytes) -> np.ndarray: ...


class PNGCodec:
    name, extension = "png", ".png"

    @property
    def settings(self) -> dict:
        import PIL

        return {"encoder": f"Pillow {PIL.__version__} (libpng/zlib)", "compress_level": 9, "optimize": True}

    def encode(self, array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", compress_level=9, optimize=True)
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return _pillow_decode(data, self.name)


class WebPLosslessCodec:
    """libwebp stores grayscale as RGB: a gray image comes back with three equal channels."""

    name, extension = "webp_lossless", ".webp"

    @property
    def settings(self) -> dict:
        import PIL

        return {"encoder": f"Pillow {PIL.__version__} (libwebp)", "lossless": True, "quality": 100, "method": 6}

    def encode(self, array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="WEBP", lossless=True, quality=100, method=6, exact=True)
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return _pillow_decode(data, self.name)


def _pillow_decode(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise BitstreamError(f"{name}: cannot decode stream: {err}") from None


def imagecodecs_module():
    try:
        import imagecodecs
    except ImportError:
        raise CodecError(
            "JPEG XL, JPEG-LS and JPEG 2000 need the imagecodecs package: pip install 'vcmlab[lossless]' "
            "(make install installs it), or leave them out of codec.anchors"
        ) from None
    return imagecodecs


class ImagecodecsCodec:
    """jpegxl | jpegls | jpeg2000 through imagecodecs."""

    FORMATS = {"jpegxl": ".jxl", "jpegls": ".jls", "jpeg2000": ".j2k"}

    def __init__(self, format: str, effort: int = 9):
        if format not in self.FORMATS:
            raise ConfigError(f"imagecodecs lossless format must be one of {sorted(self.FORMATS)}, got {format!r}")
        self.name, self.extension, self.effort = format, self.FORMATS[format], effort
        self.codecs = imagecodecs_module()

    @property
    def settings(self) -> dict:
        library = {"jpegxl": "libjxl", "jpegls": "CharLS", "jpeg2000": "OpenJPEG"}[self.name]
        options = {
            "jpegxl": {"lossless": True, "effort": self.effort},
            "jpegls": {"near": 0},
            "jpeg2000": {"reversible": True, "mct": True, "codecformat": "J2K"},
        }[self.name]
        return {"encoder": f"imagecodecs {self.codecs.__version__} ({library})", **options}

    def encode(self, array: np.ndarray) -> bytes:
        c = self.codecs
        if self.name == "jpegxl":
            return bytes(c.jpegxl_encode(array, lossless=True, effort=self.effort))
        if self.name == "jpegls":
            return bytes(c.jpegls_encode(array, level=0))
        return bytes(c.jpeg2k_encode(array, reversible=True, mct=True, codecformat="J2K"))

    def decode(self, data: bytes) -> np.ndarray:
        c = self.codecs
        decode = {"jpegxl": c.jpegxl_decode, "jpegls": c.jpegls_decode, "jpeg2000": c.jpeg2k_decode}[self.name]
        try:
            return np.asarray(decode(data))
        except Exception as err:  # imagecodecs raises its own error class per format
            raise BitstreamError(f"{self.name}: cannot decode stream: {err}") from None


def lossless_anchor(name: str) -> LosslessImageCodec:
    if name == "png":
        return PNGCodec()
    if name in ("webp", "webp_lossless"):
        return WebPLosslessCodec()
    if name in ImagecodecsCodec.FORMATS:
        return ImagecodecsCodec(name)
    raise ConfigError(f"unknown lossless anchor {name!r}: choose from png, webp, {', '.join(ImagecodecsCodec.FORMATS)}")
