"""A dataset of image files, and the policy for files that cannot be used."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Callable, Literal

import torch
from torch.utils.data import Dataset

from datamodules.crops import crop_window
from datamodules.image_io import ImageReadError, load_rgb

log = logging.getLogger(__name__)
BadImagePolicy = Literal["error", "skip"]


class ImageTooSmallError(ValueError):
    """An image is smaller than the crop the dataset must cut from it."""


def checked_load(path: Path, crop_size: int | None) -> torch.Tensor:
    image = load_rgb(path)
    if crop_size is not None and min(image.shape[-2:]) < crop_size:
        h, w = image.shape[-2:]
        raise ImageTooSmallError(
            f"image {path} is {w}x{h}, smaller than the crop {crop_size}x{crop_size}; "
            "lower data.crop_size or set data.on_bad_image=skip"
        )
    return image


class SkippingDataset(Dataset):
    """Base for datasets whose items come from files: with on_bad_image='skip' an unusable file is
    reported with a warning (once) and replaced by the next usable item instead of stopping training."""

    def __init__(self, on_bad_image: BadImagePolicy = "error"):
        if on_bad_image not in ("error", "skip"):
            raise ValueError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        self.on_bad_image = on_bad_image
        self.skipped: set[int] = set()

    def load_item(self, index: int) -> dict:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        for offset in range(len(self)):
            i = (index + offset) % len(self)
            if i in self.skipped:
                continue
            try:
                return self.load_item(i)
            except (ImageReadError, ImageTooSmallError, FileNotFoundError) as err:
                if self.on_bad_image == "error":
                    raise
                self.skipped.add(i)
                warnings.warn(f"skipping unusable image ({err})", stacklevel=2)
                log.warning("skipping unusable image: %s", err)
        raise RuntimeError("every image of the dataset is unusable (see the warnings above)")


class ImageFileDataset(SkippingDataset):
    """Images from a list of files: random crops with flips for training, centre crops (or whole
    images when crop_size is None) for evaluation. `repeats` lets a tiny set fill a longer epoch."""

    def __init__(
        self,
        paths: list[Path],
        crop_size: int | None,
        train: bool,
        repeats: int = 1,
        on_bad_image: BadImagePolicy = "error",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__(on_bad_image)
        if not paths:
            raise ValueError("ImageFileDataset needs at least one image")
        self.paths = list(paths)
        self.crop_size = crop_size
        self.train = train
        self.repeats = repeats
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def load_item(self, index: int) -> dict:
        path = self.paths[index % len(self.paths)]
        image = checked_load(path, self.crop_size)
        if self.crop_size is not None:
            top, left = crop_window(*image.shape[-2:], self.crop_size, random=self.train)
            image = image[:, top : top + self.crop_size, left : left + self.crop_size]
        if self.train and torch.rand(()) < 0.5:
            image = image.flip(-1)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "name": path.stem}
