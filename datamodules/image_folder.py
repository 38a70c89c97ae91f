"""Any folder of images (Kodak, CLIC, DIV2K, ...)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from datamodules.base import ImageDataModule, check_count
from datamodules.decoded_copies import check_kinds, training_set
from datamodules.image_datasets import BadImagePolicy, ImageFileDataset
from datamodules.image_io import list_images
from vcmlab.errors import ConfigError


def split_by_name(paths: list[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic split that does not move when files are added: a file is in validation when the
    hash of its name falls below val_fraction."""

    def in_val(p: Path) -> bool:
        return int(hashlib.md5(p.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < val_fraction

    val = [p for p in paths if in_val(p)]
    train = [p for p in paths if not in_val(p)]
    if not val or not train:
        raise ValueError(
            f"val_fraction={val_fraction} leaves an empty split of {len(paths)} images; give val_dir instead"
        )
    return train, val


class ImageFolderDataModule(ImageDataModule):
    """train_dir (+ val_dir, + test_dir); without val_dir a fixed fraction of train_dir validates.
    `decoded_copies`: see datamodules.decoded_copies (training split only)."""

    def __init__(
        self,
        train_dir: str | None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        val_fraction: float = 0.1,
        crop_size: int = 256,
        val_crop_size: int | None = None,
        train_repeats: int = 1,
        on_bad_image: BadImagePolicy = "error",
        decoded_copies: list[str] | None = None,
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        if train_dir is None and val_dir is None and test_dir is None:
            raise ConfigError("image_folder needs at least one of train_dir, val_dir, test_dir")
        self.dirs = {"train": train_dir, "val": val_dir, "test": test_dir}
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        self.val_fraction = val_fraction
        self.crop_size = check_count(crop_size, "crop_size")
        self.val_crop_size = check_count(val_crop_size, "val_crop_size", allow_none=True)
        self.train_repeats = check_count(train_repeats, "train_repeats")
        self.on_bad_image = on_bad_image
        self.decoded_copies = check_kinds(decoded_copies)

    def make_datasets(self, stage):
        files = {split: list_images(d) for split, d in self.dirs.items() if d is not None}
        if "train" in files and "val" not in files:
            files["train"], files["val"] = split_by_name(files["train"], self.val_fraction)
        datasets = {}
        for split, paths in files.items():
            if split == "train":
                datasets[split] = training_set(
                    paths, self.decoded_copies, self.crop_size, self.train_repeats, self.on_bad_image
                )
            else:
                datasets[split] = ImageFileDataset(paths, self.val_crop_size, False, on_bad_image=self.on_bad_image)
        return datasets
