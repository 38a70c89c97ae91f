"""JPEG and WebP through Pillow."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from conventional_codecs.base import CodecError, from_uint8, to_uint8

FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}


class PillowCodec:
    """quality: JPEG 1-95 (libjpeg, 4:2:0), WebP 0-100 (lossy)."""

    def __init__(self, format: str = "jpeg", quality: int = 75):
        if format not in FORMATS:
            raise ValueError(f"PillowCodec format must be one of {sorted(FORMATS)}, got {format!r}")
        self.format, self.quality = format, int(quality)
        self.name = f"{format}_q{self.quality}"

    def encode(self, image) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(image)).save(buffer, format=FORMATS[self.format], quality=self.quality)
        return buffer.getvalue()

    def decode(self, data: bytes):
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return from_uint8(np.asarray(image.convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise CodecError(f"{self.name}: cannot decode stream: {err}") from None
