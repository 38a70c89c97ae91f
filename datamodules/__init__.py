"""LightningDataModules: embedded sample photos, any image folder, OpenImages V6, post-filter triples, video."""

from datamodules.filter_triples import FilterTriplesDataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.image_io import ImageReadError, load_rgb
from datamodules.openimages import OpenImagesDataModule
from datamodules.sample import SampleDataModule
from datamodules.video import SampleVideoDataModule, VideoFolderDataModule

__all__ = [
    "FilterTriplesDataModule",
    "ImageFolderDataModule",
    "ImageReadError",
    "OpenImagesDataModule",
    "SampleDataModule",
    "SampleVideoDataModule",
    "VideoFolderDataModule",
    "load_rgb",
]
