"""The post-filter triples datamodule and its decode cache (HEVC through PyAV, real encodes)."""

from functools import partial

import pytest
import torch
from PIL import Image

from conventional_codecs import PyAVIntraCodec
from datamodules.decode_cache import DecodeCache
from datamodules.filter_triples import FilterTriplesDataModule
from datamodules.image_io import ImageReadError

HEVC = partial(PyAVIntraCodec, codec="hevc", preset="ultrafast")


def test_cache_serves_the_stored_decode_and_keys_on_qp_settings_and_content(tmp_path, monkeypatch):
    image = torch.rand(3, 48, 64)
    cache = DecodeCache(tmp_path, HEVC)
    first = cache.decoded(image, 37)
    codec = cache.codec(37)
    assert torch.equal(first, codec.decode(codec.encode(image)).mul(255).round().div(255))

    def no_encoding(_):
        raise AssertionError("a cache hit must not encode")

    monkeypatch.setattr(PyAVIntraCodec, "encode", no_encoding)
    assert torch.equal(cache.decoded(image, 37), first)
    monkeypatch.undo()
    paths = {
        cache.path(image, 37),
        cache.path(image, 42),
        cache.path(image.flip(-1), 37),
        cache.path(image, 37, 0.5),
        DecodeCache(tmp_path, partial(PyAVIntraCodec, codec="hevc", preset="medium")).path(image, 37),
    }
    assert len(paths) == 5


def test_triples_are_aligned_blocks_with_their_qp_and_validation_tiles_whole_blocks(tmp_path):
    dm = FilterTriplesDataModule(
        HEVC, str(tmp_path / "cache"), qps=[32, 42], block_size=64, batch_size=4, train_repeats=2
    )
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["original"].shape == batch["decoded"].shape == (4, 3, 64, 64)
    assert set(batch["qp"].tolist()) <= {32.0, 42.0}
    err = (batch["original"] - batch["decoded"]).pow(2).mean()
    assert 0 < err < 0.01  # the decode of the same block, not of another one
    val = dm.datasets["val"]
    # chelsea 451x300 -> 7x4 blocks, rocket 640x427 -> 10x6 blocks, at two QPs
    assert len(val) == 2 * (7 * 4 + 10 * 6)
    mse = {
        qp: torch.stack([(v["original"] - v["decoded"]).pow(2).mean() for v in val if v["qp"] == qp]).mean()
        for qp in (32.0, 42.0)
    }
    assert mse[42.0] > mse[32.0]


def test_bad_images_fail_clearly_or_are_skipped(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray((torch.rand(80, 80, 3) * 255).byte().numpy()).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray((torch.rand(20, 20, 3) * 255).byte().numpy()).save(folder / "tiny.png")
    dm = FilterTriplesDataModule(
        HEVC, str(tmp_path / "c"), qps=[37], block_size=64, train_dir=str(folder), val_dir=str(folder)
    )
    with pytest.raises(ImageReadError, match="broken.png"):
        dm.prepare_data()
    dm = FilterTriplesDataModule(
        HEVC,
        str(tmp_path / "c"),
        qps=[37],
        block_size=64,
        train_dir=str(folder),
        val_dir=str(folder),
        on_bad_image="skip",
    )
    with pytest.warns(UserWarning, match="skipping"):
        dm.setup("fit")
    assert len(dm.datasets["val"]) == 1
    with pytest.raises(ValueError, match="empty"):
        FilterTriplesDataModule(HEVC, str(tmp_path / "c"), qps=[])
