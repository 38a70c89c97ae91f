"""The embedded sample data: real photographs shipped inside the scikit-image wheel."""
from __future__ import annotations

import importlib.resources
from pathlib import Path

from datamodules.base import ImageDataModule
from datamodules.image_datasets import ImageFileDataset

# Public-domain / CC0 photographs (see skimage.data docstrings). The split is fixed so that runs compare.
TRAIN_IMAGES = ("astronaut.png", "camera.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png", "retina.jpg")
VAL_IMAGES = ("chelsea.png", "rocket.jpg")


def sample_image_paths(names: tuple[str, ...]) -> list[Path]:
    folder = Path(str(importlib.resources.files("skimage") / "data"))
    paths = [folder / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-image's bundled images {missing} are missing from {folder}; reinstall scikit-image")
    return paths


class SampleDataModule(ImageDataModule):
    """Random crops of 7 photographs for training, centre crops of 2 others for validation."""

    def __init__(self, crop_size: int = 128, val_crop_size: int | None = 256, train_repeats: int = 8, **loader_kwargs):
        super().__init__(**loader_kwargs)
        self.crop_size = crop_size
        self.val_crop_size = val_crop_size
        self.train_repeats = train_repeats

    def make_datasets(self, stage):
        return {
            "train": ImageFileDataset(sample_image_paths(TRAIN_IMAGES), self.crop_size, train=True, repeats=self.train_repeats),
            "val": ImageFileDataset(sample_image_paths(VAL_IMAGES), self.val_crop_size, train=False),
        }
