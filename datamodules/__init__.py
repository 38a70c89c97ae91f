"""LightningDataModules: embedded sample photos, any image folder, OpenImages V6."""
from datamodules.image_folder import ImageFolderDataModule
from datamodules.image_io import ImageReadError, load_rgb
from datamodules.openimages import OpenImagesDataModule
from datamodules.sample import SampleDataModule

__all__ = ["ImageFolderDataModule", "ImageReadError", "OpenImagesDataModule", "SampleDataModule", "load_rgb"]
