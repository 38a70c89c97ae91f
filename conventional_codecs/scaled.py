"""The MPEG VCM resize ladder: code a downscaled image, scale the decoded one back to the original size."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from conventional_codecs.base import CodecError, ImageCodec, settings_of, split_size, with_size
from conventional_codecs.container import payload_bytes
from vcmlab.errors import ConfigError


class ScaledCodec:
    """Wraps any codec; bpp must be counted against the ORIGINAL pixels (the caller divides by them)."""

    def __init__(self, inner: ImageCodec, scale: float):
        if not 0 < scale <= 1:
            raise ConfigError(f"resize scale must be in (0, 1], got {scale!r}")
        self.inner, self.scale = inner, float(scale)
        self.name = inner.name if scale == 1 else f"{inner.name}_s{round(scale * 100)}"

    def encode(self, image: torch.Tensor) -> bytes:
        height, width = image.shape[-2:]
        if self.scale == 1:
            return self.inner.encode(image)
        size = (max(1, round(height * self.scale)), max(1, round(width * self.scale)))
        small = F.interpolate(image[None].float(), size=size, mode="bicubic", antialias=True, align_corners=False)[0]
        try:
            return with_size(height, width, self.inner.encode(small.clamp(0, 1)))
        except CodecError as err:
            raise CodecError(
                f"resize scale {self.scale} turns the {width}x{height} image into {size[1]}x{size[0]}: {err}"
            ) from None

    @property
    def settings(self) -> dict:
        resize = (
            {"scale": self.scale, "down": "bicubic, antialiased", "up": "bicubic"}
            if self.scale != 1
            else {"scale": 1.0}
        )
        return settings_of(self.inner) | {"resize": resize}

    def payload_bytes(self, data: bytes) -> int:
        inner = data if self.scale == 1 else split_size(data, self.name)[2]
        return payload_bytes(self.inner, inner)

    def decode(self, data: bytes) -> torch.Tensor:
        if self.scale == 1:
            return self.inner.decode(data)
        height, width, payload = split_size(data, self.name)
        small = self.inner.decode(payload)
        return F.interpolate(small[None], size=(height, width), mode="bicubic", align_corners=False)[0].clamp(0, 1)
