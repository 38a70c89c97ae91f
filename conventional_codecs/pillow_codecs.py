"""JPEG and WebP through Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from conventional_codecs.base import check_int_range, from_uint8, to_uint8
from vcmlab.errors import BitstreamError, ConfigError

FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}
QUALITY = {"jpeg": (1, 100), "webp": (0, 100)}  # Pillow: JPEG above 95 is allowed but not advised


class PillowCodec:
    """quality: JPEG 1-100 (libjpeg, 4:2:0; above 95 is not advised), WebP 0-100 (lossy)."""

    def __init__(self, format: str = "jpeg", quality: int = 75):
        if format not in FORMATS:
            raise ConfigError(f"PillowCodec format must be one of {sorted(FORMATS)}, got {format!r}")
        self.format, self.quality = format, check_int_range(quality, *QUALITY[format], f"{format} quality")
        self.name = f"{format}_q{self.quality}"

    @property
    def settings(self) -> dict:
        import PIL

        colour = (
            "JFIF: BT.601 full range, 4:2:0 (libjpeg's defaults)"
            if self.format == "jpeg"
            else "BT.601 limited range, 4:2:0 (libwebp)"
        )
        return {"encoder": f"Pillow {PIL.__version__} ({self.format})", "quality": self.quality, "colour": colour}

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
            raise BitstreamError(f"{self.name}: cannot decode stream: {err}") from None
