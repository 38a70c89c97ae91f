"""LightningDataModule plumbing shared by every image datamodule."""

from __future__ import annotations

from functools import partial

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from vcmlab.errors import ConfigError


def check_count(value, what: str, minimum: int = 1, allow_none: bool = False) -> int | None:
    """An integer setting (batch size, crop size, ...) of at least `minimum`, or a ConfigError naming it."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or null" if allow_none else ""
        raise ConfigError(f"{what} must be an integer >= {minimum}{none}, got {value!r}")
    return value


def collate(batch: list[dict], stacked: tuple[str, ...] = ("image",)) -> dict:
    """Stack the `stacked` tensors (images); keep per-image annotations (boxes, names, ...) as lists."""
    return {
        key: torch.stack([item[key] for item in batch]) if key in stacked else [item[key] for item in batch]
        for key in batch[0]
    }


class ImageDataModule(pl.LightningDataModule):
    """Subclasses build the datasets in `make_datasets`; this class turns them into loaders.

    Validation/test batches default to 1 image because evaluation images keep their own sizes.
    """

    stacked: tuple[str, ...] = ("image",)  # the item keys collated into one tensor

    def __init__(self, batch_size: int = 8, val_batch_size: int = 1, num_workers: int = 0, pin_memory: bool = False):
        super().__init__()
        self.batch_size = check_count(batch_size, "batch_size")
        self.val_batch_size = check_count(val_batch_size, "val_batch_size")
        self.num_workers = check_count(num_workers, "num_workers", minimum=0)
        self.pin_memory = pin_memory
        self.datasets: dict[str, Dataset] = {}

    def make_datasets(self, stage: str | None) -> dict[str, Dataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            self.datasets = self.make_datasets(stage)

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"{type(self).__name__} has no {split!r} split configured")
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=partial(collate, stacked=self.stacked),
            drop_last=shuffle,
        )

    def train_dataloader(self) -> DataLoader:
        items = len(self.datasets["train"]) if "train" in self.datasets else self.batch_size
        if items < self.batch_size:  # incomplete batches are dropped: training would draw none, silently
            raise ConfigError(
                f"the training set has {items} items, fewer than batch_size={self.batch_size}: not one batch "
                "would be drawn; "
                "lower data.batch_size or raise data.train_repeats"
            )
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.val_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test" if "test" in self.datasets else "val", False, self.val_batch_size)
