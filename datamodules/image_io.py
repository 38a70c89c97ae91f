"""Reading images of any common mode into float RGB tensors, with one clear error when that fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    with opened(path) as (image, path):
        array = _to_rgb_array(image, path)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@contextmanager
def opened(path: str | Path) -> Iterator[tuple[Image.Image, Path]]:
    """The decoded Pillow image (and its Path); any failure to read it is one ImageReadError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later inside a batch
            if image.format == "JPEG":
                _check_jpeg_data(path)
            yield image, path
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"cannot read image {path}: {err} Raise PIL.Image.MAX_IMAGE_PIXELS only for files you trust"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageReadError):
            raise
        raise ImageReadError(f"cannot read image {path}: {err}") from None


def load_8bit(path: str | Path, alpha: str = "refuse") -> np.ndarray:
    """The image's own 8-bit samples, as lossless coding needs them: (H, W) for grayscale, (H, W, 3) for
    RGB (palette images expand to RGB, bilevel to 0/255 gray). An alpha channel is refused, or dropped
    with alpha="drop"; 16-bit, floating-point and CMYK images are refused (nothing here codes them
    losslessly)."""
    if alpha not in ("refuse", "drop"):
        raise InputError(f"alpha must be 'refuse' or 'drop', got {alpha!r}")
    with opened(path) as (image, path):
        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode == "1":
            image = image.convert("L")
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            if alpha == "refuse":
                raise ImageReadError(
                    f"{path} has an alpha channel ({mode}); the lossless model codes colour only: set alpha=drop "
                    "(vcm-eval: codec.alpha=drop) to code the colour channels, for every codec alike"
                )
            image = image.convert("L" if image.mode.startswith("L") else "RGB")
        if image.mode in _SIXTEEN_BIT_MODES:
            raise ImageReadError(f"{path} has 16-bit samples ({mode}); lossless coding here takes 8-bit images only")
        if image.mode not in ("L", "RGB"):
            raise ImageReadError(f"{path} is {mode}; lossless coding here takes 8-bit grayscale or RGB images only")
        return np.array(image, dtype=np.uint8)


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
