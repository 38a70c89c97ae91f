"""The embedded sample data: real photographs shipped inside the scikit-image wheel."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from datamodules.base import ImageDataModule, check_count
from datamodules.decoded_copies import check_kinds, training_set
from datamodules.image_datasets import BadImagePolicy, ImageFileDataset
from vcmlab.errors import ConfigError

# Public-domain / CC0 photographs (see skimage.data docstrings). The split is fixed so that runs compare.
TRAIN_IMAGES = (
    "astronaut.png",
    "camera.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
)
VAL_IMAGES = ("chelsea.png", "rocket.jpg")


def sample_image_paths(names: tuple[str, ...]) -> list[Path]:
    folder = Path(str(importlib.resources.files("skimage") / "data"))
    paths = [folder / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"scikit-image's bundled images {missing} are missing from {folder}; reinstall scikit-image"
        )
    return paths


class SampleDataModule(ImageDataModule):
    """Random crops of 7 photographs for training, centre crops of 2 others for validation.
    `train_images`: other files of scikit-image's data folder to train on instead (never the
    validation photos); `decoded_copies`: kinds of datamodules.decoded_copies to add a JPEG- or
    H.264-decoded copy of every training image (the lossless experiment)."""

    def __init__(
        self,
        crop_size: int = 128,
        val_crop_size: int | None = 256,
        train_repeats: int = 8,
        on_bad_image: BadImagePolicy = "error",
        train_images: list[str] | None = None,
        decoded_copies: list[str] | None = None,
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        self.train_images = tuple(train_images) if train_images is not None else TRAIN_IMAGES
        if not self.train_images or set(self.train_images) & set(VAL_IMAGES):
            raise ConfigError(
                f"data.train_images must be a non-empty list without the validation photos {list(VAL_IMAGES)}, "
                f"got {list(self.train_images)}"
            )
        self.crop_size = check_count(crop_size, "crop_size")
        self.val_crop_size = check_count(val_crop_size, "val_crop_size", allow_none=True)
        self.train_repeats = check_count(train_repeats, "train_repeats")
        self.on_bad_image = on_bad_image
        self.decoded_copies = check_kinds(decoded_copies)

    def make_datasets(self, stage):
        paths = {"train": sample_image_paths(self.train_images), "val": sample_image_paths(VAL_IMAGES)}
        train = training_set(paths["train"], self.decoded_copies, self.crop_size, self.train_repeats, self.on_bad_image)
        return {
            "train": train,
            "val": ImageFileDataset(paths["val"], self.val_crop_size, False, on_bad_image=self.on_bad_image),
        }
