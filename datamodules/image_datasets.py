"""A dataset of image files, and the policy for files that cannot be used."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import Dataset

from datamodules.crops import crop_window
from datamodules.image_io import ImageReadError, load_rgb
from vcmlab.errors import ConfigError, InputError

log = logging.getLogger(__name__)
BadImagePolicy = Literal["error", "skip"]


class ImageTooSmallError(InputError):
    """An image is smaller than the crop the dataset must cut from it."""


def checked_load(
    path: Path, crop_size: int | None, setting: str = "data.crop_size", skippable: bool = True
) -> torch.Tensor:
    """The image, or ImageTooSmallError whose hint names the `setting` that sets the crop."""
    image = load_rgb(path)
    if crop_size is not None and min(image.shape[-2:]) < crop_size:
        h, w = image.shape[-2:]
        hint = f"lower {setting}" + (" or set data.on_bad_image=skip" if skippable else "")
        raise ImageTooSmallError(f"image {path} is {w}x{h}, smaller than the crop {crop_size}x{crop_size}; {hint}")
    return image


UNUSABLE_IMAGE_ERRORS = (ImageReadError, ImageTooSmallError, FileNotFoundError)  # what on_bad_image=skip skips


def usable_items(dataset) -> Iterator[dict]:
    """Every usable item of an evaluation split once: a SkippingDataset leaves its bad images out, any
    other dataset gives all its items."""
    if hasattr(dataset, "usable_items"):
        return dataset.usable_items()
    return (dataset[i] for i in range(len(dataset)))


def item_or_none(dataset, index: int) -> dict | None:
    """Item `index` of an evaluation split, or None when a SkippingDataset leaves it out."""
    return dataset.try_item(index) if hasattr(dataset, "try_item") else dataset[index]


class SkippingDataset(Dataset):
    """Base for datasets whose items come from files. With on_bad_image='skip' an unusable file is
    reported with a warning (once); indexing (training) replaces it by the next usable item, while
    `usable_items` (evaluation) leaves it out, so no image is scored twice."""

    def __init__(self, on_bad_image: BadImagePolicy = "error"):
        if on_bad_image not in ("error", "skip"):
            raise ConfigError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
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
            except UNUSABLE_IMAGE_ERRORS as err:
                self._skip(i, err)
        raise InputError("every image of the dataset is unusable (see the warnings above)")

    def usable_items(self) -> Iterator[dict]:
        """Every usable item once, in order; unusable ones are skipped (with a warning) or raise."""
        for i in range(len(self)):
            item = self.try_item(i)
            if item is not None:
                yield item

    def try_item(self, index: int) -> dict | None:
        """Item `index`, or None when it is unusable and skipped (with a warning); or it raises."""
        if index in self.skipped:
            return None
        try:
            return self.load_item(index)
        except UNUSABLE_IMAGE_ERRORS as err:
            self._skip(index, err)
            return None

    def _skip(self, index: int, err: Exception) -> None:
        if self.on_bad_image == "error":
            raise err
        self.skipped.add(index)
        warnings.warn(f"skipping unusable image ({err})", stacklevel=3)
        log.warning("skipping unusable image: %s", err)


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
        crop_setting: str | None = None,
    ):
        super().__init__(on_bad_image)
        if not paths:
            raise ValueError("ImageFileDataset needs at least one image")
        self.paths = list(paths)
        self.crop_size = crop_size
        self.train = train
        self.repeats = repeats
        self.transform = transform
        self.crop_setting = crop_setting or ("data.crop_size" if train else "data.val_crop_size")  # named in errors

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def read(self, index: int) -> tuple[torch.Tensor, str]:
        """The whole image `index` (before cropping) and its name."""
        path = self.paths[index % len(self.paths)]
        skippable = self.crop_setting.startswith("data.")
        return checked_load(path, self.crop_size, self.crop_setting, skippable=skippable), path.stem

    def load_item(self, index: int) -> dict:
        image, name = self.read(index)
        if self.crop_size is not None:
            top, left = crop_window(*image.shape[-2:], self.crop_size, random=self.train)
            image = image[:, top : top + self.crop_size, left : left + self.crop_size]
        if self.train and torch.rand(()) < 0.5:
            image = image.flip(-1)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "name": name}
