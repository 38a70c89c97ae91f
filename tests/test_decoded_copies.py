"""Decoded copies of training images (data.decoded_copies): made from the training split only, with
the structure of their codec (4:2:0 chroma for H.264 frames), sizes kept, bad kinds refused."""

import numpy as np
import pytest

from datamodules import SampleDataModule
from datamodules.decoded_copies import h264_copy, jpeg_copy
from datamodules.sample import VAL_IMAGES
from vcmlab.errors import ConfigError


def block_chroma_deviation(rgb: np.ndarray) -> float:
    """Mean |(R−G, B−G) − those of the aligned 2x2 block's lower-right pixel|."""
    x = rgb.astype(int)
    d = np.stack([x[..., 0] - x[..., 1], x[..., 2] - x[..., 1]])
    h, w = d.shape[1] // 2 * 2, d.shape[2] // 2 * 2
    blocks = d[:, :h, :w].reshape(2, h // 2, 2, w // 2, 2)
    return float(np.abs(blocks - blocks[:, :, 1:2, :, 1:2]).mean())


def test_copies_keep_the_size_and_carry_their_codecs_structure():
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(40, 200, (12, 10, 3)), np.ones((4, 4, 1)))[:47, :37]  # odd sizes
    image = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    for copy in (jpeg_copy(image), h264_copy(image)):
        assert copy.shape == image.shape and copy.dtype == np.uint8
        assert 0 < np.abs(copy.astype(int) - image).mean() < 12  # lossy, but near
    assert block_chroma_deviation(image) > 3
    assert block_chroma_deviation(h264_copy(image)[:46, :36]) < 0.5  # constant chroma per 2x2 block


def test_the_sample_datamodule_adds_copies_of_the_training_split_only():
    dm = SampleDataModule(
        crop_size=32,
        train_images=["astronaut.png", "camera.png"],
        train_repeats=1,
        decoded_copies=["h264", "jpeg"],
        batch_size=2,
    )
    dm.setup()
    names = [dm.datasets["train"][i]["name"] for i in range(len(dm.datasets["train"]))]
    assert names == ["astronaut", "camera", "astronaut_h264", "astronaut_jpeg", "camera_h264", "camera_jpeg"]
    assert [item["name"] for item in dm.datasets["val"].usable_items()] == [v.split(".")[0] for v in VAL_IMAGES]
    with pytest.raises(ConfigError, match="decoded_copies"):
        SampleDataModule(decoded_copies=["png"])


def test_an_image_folder_takes_copies_too(tmp_path):
    from PIL import Image

    from datamodules import ImageFolderDataModule

    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    dm = ImageFolderDataModule(str(tmp_path), val_dir=str(tmp_path), crop_size=32, decoded_copies=["jpeg"])
    dm.setup()
    names = sorted(dm.datasets["train"][i]["name"] for i in range(len(dm.datasets["train"])))
    assert names == ["a", "a_jpeg", "b", "b_jpeg"]
    assert len(dm.datasets["val"]) == 2
