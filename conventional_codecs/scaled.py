"""The MPEG VCM resize ladder: code a downscaled image, scale the decoded one back to the original size."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from conventional_codecs.base import ImageCodec, split_size, with_size


class ScaledCodec:
    """Wraps any codec; bpp must be counted against the ORIGINAL pixels (the caller divides by them)."""

    def __init__(self, inner: ImageCodec, scale: float):
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        self.inner, self.scale = inner, float(scale)
        self.name = inner.name if scale == 1 else f"{inner.name}_s{round(scale * 100)}"

    def encode(self, image: torch.Tensor) -> bytes:
        height, width = image.shape[-2:]
        if self.scale == 1:
            return self.inner.encode(image)
        size = (max(2, round(height * self.scale)), max(2, round(width * self.scale)))
        small = F.interpolate(image[None].float(), size=size, mode="bicubic", antialias=True, align_corners=False)[0]
        return with_size(height, width, self.inner.encode(small.clamp(0, 1)))

    def decode(self, data: bytes) -> torch.Tensor:
        if self.scale == 1:
            return self.inner.decode(data)
        height, width, payload = split_size(data, self.name)
        small = self.inner.decode(payload)
        return F.interpolate(small[None], size=(height, width), mode="bicubic", align_corners=False)[0].clamp(0, 1)
