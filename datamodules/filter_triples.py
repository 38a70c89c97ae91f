"""Training triples for post-filters (methods 1 and 9): (original block, conventionally decoded block, QP).

Every image is coded over a QP ladder (× resize scales) by a conventional codec, HEVC through PyAV by
default, VTM when configured; decodes are cached on disk (datamodules.decode_cache). Training samples
random aligned blocks; validation tiles each held-out image into whole blocks, so validation figures are
over fixed blocks.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch.utils.data import Dataset

from conventional_codecs import ImageCodec
from datamodules.base import ImageDataModule, check_count
from datamodules.crops import crop_window
from datamodules.decode_cache import DecodeCache
from datamodules.image_datasets import UNUSABLE_IMAGE_ERRORS, BadImagePolicy, checked_load
from datamodules.image_io import list_images, load_rgb
from datamodules.sample import TRAIN_IMAGES, VAL_IMAGES, sample_image_paths
from vcmlab.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodedImage:
    original: Path
    decoded: Path  # in the decode cache
    qp: int
    scale: float
    height: int
    width: int


@lru_cache(maxsize=256)
def _load_u8(path: Path) -> torch.Tensor:
    return (load_rgb(path) * 255).round().byte()  # a quarter of float32's memory


def _block(path: Path, top: int, left: int, size: int) -> torch.Tensor:
    return _load_u8(path)[:, top : top + size, left : left + size].float() / 255


class FilterTripleDataset(Dataset):
    """train: `repeats` random blocks of each coded image per epoch (with a shared horizontal flip);
    eval: every whole block of every coded image, in raster order."""

    def __init__(self, coded: list[CodedImage], block_size: int, train: bool, repeats: int = 1):
        if not coded:
            raise ValueError("FilterTripleDataset needs at least one coded image")
        self.coded, self.block_size, self.train, self.repeats = coded, block_size, train, repeats
        if not train:
            self.tiles = [
                (i, top, left)
                for i, c in enumerate(coded)
                for top in range(0, c.height - block_size + 1, block_size)
                for left in range(0, c.width - block_size + 1, block_size)
            ]

    def __len__(self) -> int:
        return len(self.coded) * self.repeats if self.train else len(self.tiles)

    def __getitem__(self, index: int) -> dict:
        if self.train:
            c = self.coded[index % len(self.coded)]
            top, left = crop_window(c.height, c.width, self.block_size, random=True)
        else:
            i, top, left = self.tiles[index]
            c = self.coded[i]
        original = _block(c.original, top, left, self.block_size)
        decoded = _block(c.decoded, top, left, self.block_size)
        if self.train and torch.rand(()) < 0.5:
            original, decoded = original.flip(-1), decoded.flip(-1)
        return {"original": original, "decoded": decoded, "qp": torch.tensor(float(c.qp)), "name": c.original.stem}


class FilterTriplesDataModule(ImageDataModule):
    """train_dir / val_dir: image folders; None uses the embedded sample photos (7 train, 2 held out).

    codec: a partial conventional codec that takes the QP (`ladder_key`), e.g. PyAVIntraCodec.
    """

    stacked = ("original", "decoded", "qp")

    def __init__(
        self,
        codec: Callable[..., ImageCodec],
        cache_dir: str,
        qps: list[int] = (22, 27, 32, 37, 42, 47),
        scales: list[float] = (1.0,),
        block_size: int = 128,
        train_dir: str | None = None,
        val_dir: str | None = None,
        ladder_key: str = "qp",
        train_repeats: int = 16,
        on_bad_image: BadImagePolicy = "error",
        batch_size: int = 8,
        val_batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__(batch_size, val_batch_size, num_workers, pin_memory)
        check_count(block_size, "block_size", minimum=8)
        check_count(train_repeats, "train_repeats")
        if not qps:
            raise ConfigError("the QP ladder (qps) is empty")
        if any(not 0 < s <= 1 for s in scales):
            raise ConfigError(f"scales must be in (0, 1], got {list(scales)}")
        self.cache = DecodeCache(cache_dir, codec, ladder_key)
        self.qps, self.scales = [int(q) for q in qps], [float(s) for s in scales]
        self.block_size, self.train_repeats, self.on_bad_image = block_size, train_repeats, on_bad_image
        self.sources = {
            "train": list_images(train_dir) if train_dir else sample_image_paths(TRAIN_IMAGES),
            "val": list_images(val_dir) if val_dir else sample_image_paths(VAL_IMAGES),
        }

    def code_images(self, paths: list[Path]) -> list[CodedImage]:
        """Every image at every (QP, scale), from the cache or coded now."""
        coded = []
        for path in paths:
            try:
                image = checked_load(path, self.block_size, "data.block_size")
            except UNUSABLE_IMAGE_ERRORS as err:
                if self.on_bad_image == "error":
                    raise
                warnings.warn(f"skipping unusable image ({err})", stacklevel=2)
                continue
            for scale in self.scales:
                for qp in self.qps:
                    coded.append(CodedImage(path, self.cache.ensure(image, qp, scale), qp, scale, *image.shape[-2:]))
        if not coded:
            raise RuntimeError("every image was unusable (see the warnings above)")
        return coded

    def prepare_data(self) -> None:
        # one process fills the cache; setup() on every rank then only reads it
        for paths in self.sources.values():
            self.code_images(paths)

    def make_datasets(self, stage: str | None) -> dict[str, FilterTripleDataset]:
        datasets = {
            "train": FilterTripleDataset(
                self.code_images(self.sources["train"]), self.block_size, True, self.train_repeats
            ),
            "val": FilterTripleDataset(self.code_images(self.sources["val"]), self.block_size, False),
        }
        log.info(
            "post-filter triples: %d train images × %d QPs, %d validation blocks",
            len(self.sources["train"]),
            len(self.qps),
            len(datasets["val"]),
        )
        return datasets
