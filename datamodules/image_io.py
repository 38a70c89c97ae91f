"""Reading images of any common mode into float RGB tensors, with one clear error when that fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import simplejpeg
import torch
from PIL import Image, UnidentifiedImageError

from vcmlab.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class ImageReadError(InputError):
    """An image file exists but cannot be decoded (corrupt, truncated, unsupported mode)."""


def load_rgb(path: str | Path) -> torch.Tensor:
    """Return the image at `path` as a float32 tensor (3, H, W) in [0, 1].

    Grayscale is replicated to three channels, palette and CMYK are converted, an alpha channel is
    dropped (the codecs here code colour only), and 16-bit images are scaled from [0, 65535].
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later inside a batch
            if image.format == "JPEG":
                _check_jpeg_data(path)
            array = _to_rgb_array(image, path)
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"cannot read image {path}: {err} Raise PIL.Image.MAX_IMAGE_PIXELS only for files you trust"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageReadError):
            raise
        raise ImageReadError(f"cannot read image {path}: {err}") from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _check_jpeg_data(path: Path) -> None:
    """Pillow decodes a JPEG whose entropy-coded data is corrupt without a word (libjpeg only warns, and
    Pillow drops the warning): the image is silently wrong. libjpeg-turbo through simplejpeg with
    strict=True turns those warnings into errors."""
    try:
        simplejpeg.decode_jpeg(path.read_bytes(), colorspace="GRAY", strict=True)
    except ValueError as err:
        raise ImageReadError(f"cannot read image {path}: corrupt JPEG data ({err})") from None


def _to_rgb_array(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2).clip(0.0, 1.0)
    if image.mode == "F":
        raise ImageReadError(f"cannot read image {path}: floating-point images (mode F) have no defined range")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    rgb = image.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def list_images(folder: str | Path) -> list[Path]:
    """All image files below `folder`, sorted; a clear error when the folder is missing or has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found below {folder}")
    return files
