"""LightningDataModules: embedded sample photos, any image folder, OpenImages V6, post-filter triples."""

from datamodules.filter_triples import FilterTriplesDataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.image_io import ImageReadError, load_rgb
from datamodules.openimages import OpenImagesDataModule
from datamodules.sample import SampleDataModule

__all__ = [
    "FilterTriplesDataModule",
    "ImageFolderDataModule",
    "ImageReadError",
    "OpenImagesDataModule",
    "SampleDataModule",
    "load_rgb",
]
