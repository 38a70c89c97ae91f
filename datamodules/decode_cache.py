"""Conventionally decoded images on disk, so that post-filter training does not re-encode every epoch.

An entry is keyed by the codec (its name, which carries the QP and scale, plus a hash of its settings)
and by the content of the original image, so renaming files or changing a preset never serves a stale
decode. Decodes are stored as 8-bit PNG, as a real decoder outputs them. Writes go to a temporary file
first and are renamed into place, so parallel workers or ranks never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from conventional_codecs import ImageCodec, ScaledCodec
from conventional_codecs.base import settings_of, to_uint8
from datamodules.image_io import load_rgb


def codec_key(codec: ImageCodec) -> str:
    inner = codec.inner if isinstance(codec, ScaledCodec) else codec
    settings = json.dumps(settings_of(codec) or vars(inner), default=str, sort_keys=True)
    return f"{codec.name}-{hashlib.sha1(settings.encode()).hexdigest()[:8]}"


def content_key(image: torch.Tensor) -> str:
    return hashlib.sha1(to_uint8(image).tobytes()).hexdigest()[:16]


class DecodeCache:
    """`make_codec(qp)` builds the conventional codec at one QP (a Hydra partial)."""

    def __init__(self, root: str | Path, make_codec: Callable[..., ImageCodec], ladder_key: str = "qp"):
        self.root = Path(root)
        self.make_codec = make_codec
        self.ladder_key = ladder_key
        self._codecs: dict[tuple[int, float], ImageCodec] = {}

    def codec(self, qp: int, scale: float = 1.0) -> ImageCodec:
        if (qp, scale) not in self._codecs:
            self._codecs[qp, scale] = ScaledCodec(self.make_codec(**{self.ladder_key: qp}), scale)
        return self._codecs[qp, scale]

    def path(self, image: torch.Tensor, qp: int, scale: float = 1.0) -> Path:
        return self.root / codec_key(self.codec(qp, scale)) / f"{content_key(image)}.png"

    def ensure(self, image: torch.Tensor, qp: int, scale: float = 1.0) -> Path:
        """The cache file of the image coded and decoded at (qp, scale), coding it now if it is missing."""
        path = self.path(image, qp, scale)
        if path.is_file():
            return path
        codec = self.codec(qp, scale)
        decoded = codec.decode(codec.encode(image))
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
        os.close(handle)
        try:
            Image.fromarray(to_uint8(decoded)).save(tmp, format="PNG")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def decoded(self, image: torch.Tensor, qp: int, scale: float = 1.0) -> torch.Tensor:
        """The image coded and decoded at (qp, scale), as 8-bit values from the cache."""
        return load_rgb(self.ensure(image, qp, scale))
