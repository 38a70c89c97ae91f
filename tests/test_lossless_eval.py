"""The lossless anchors and vcm-eval's lossless input handling: every anchor round-trips byte for byte,
a codec that is not lossless stops the run, and images it cannot code losslessly are refused clearly."""

import sys

import numpy as np
import pytest
from PIL import Image

from conventional_codecs.lossless import ImagecodecsCodec, lossless_anchor
from datamodules.image_io import ImageReadError, load_8bit
from vcmlab.errors import CodecError, ConfigError
from vcmlab.evaluation.lossless import evaluate_codec, reproduces

ANCHORS = ("png", "webp", "jpegxl", "jpegls", "jpeg2000")


def photo_like(shape, seed=0):
    """Smooth content plus noise: what the formats' predictors are built for, at an odd size."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    base = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 5.0)
    if len(shape) == 3:
        base = base[..., None] + np.array([0, 10, -10])
    return np.clip(base + rng.normal(0, 4, shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ANCHORS)
@pytest.mark.parametrize("shape", [(37, 53, 3), (29, 18)])
def test_every_anchor_reproduces_rgb_and_gray_byte_for_byte(name, shape):
    codec = lossless_anchor(name)
    image = photo_like(shape)
    data = codec.encode(image)
    assert reproduces(codec.decode(data), image)
    assert 0 < 8 * len(data) < 8 * image.size  # smaller than raw: it compressed


def test_a_codec_that_is_not_lossless_stops_the_run(tmp_path):
    class OffByOne:
        name, extension = "broken", ".bin"

        def encode(self, array):
            return array.tobytes()

        def decode(self, data):
            out = np.frombuffer(data, np.uint8).reshape(6, 5).copy()
            out[3, 2] ^= 1
            return out

    with pytest.raises(CodecError, match="broken did not reproduce img byte for byte"):
        evaluate_codec(OffByOne(), [("img", photo_like((6, 5)))], tmp_path, progress=False)
    gray = photo_like((6, 5))
    assert reproduces(np.repeat(gray[..., None], 3, axis=2), gray)  # gray stored as RGB (WebP)
    assert not reproduces(gray.astype(np.uint16), gray)
    assert not reproduces(gray[:, :4], gray)


def test_missing_imagecodecs_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    with pytest.raises(CodecError, match=r"pip install 'vcmlab\[lossless\]'"):
        ImagecodecsCodec("jpegxl")
    with pytest.raises(ConfigError, match="unknown lossless anchor 'flif'"):
        lossless_anchor("flif")


def test_modes_without_a_lossless_8bit_path_are_refused(tmp_path):
    rgb = photo_like((20, 24, 3))
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "alpha.png")
    with pytest.raises(ImageReadError, match="alpha channel .*codec.alpha=drop"):
        load_8bit(tmp_path / "alpha.png")
    assert np.array_equal(load_8bit(tmp_path / "alpha.png", alpha="drop"), rgb)
    Image.fromarray(photo_like((20, 24)).astype(np.uint16) * 250).save(tmp_path / "deep.png")
    with pytest.raises(ImageReadError, match="16-bit"):
        load_8bit(tmp_path / "deep.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert load_8bit(tmp_path / "palette.png").shape == (20, 24, 3)
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    assert load_8bit(tmp_path / "gray.png").shape == (20, 24)
    (tmp_path / "cut.png").write_bytes((tmp_path / "gray.png").read_bytes()[:60])
    with pytest.raises(ImageReadError, match="cannot read image"):
        load_8bit(tmp_path / "cut.png")


def test_vcm_eval_lossless_logs_its_table_to_wandb_offline(tmp_path):
    from hydra.core.global_hydra import GlobalHydra

    from tests.helpers import write_image
    from vcmlab.compose import compose_config
    from vcmlab.evaluation import evaluate

    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "a.png", size=(24, 16))
    overrides = [
        "codec=lossless",
        "codec.anchors=[png,jpeg2000]",
        "logger=wandb",
        "data=image_folder",
        f"data.train_dir={photos}",
        f"data.val_dir={photos}",
        "data.num_workers=0",
    ]
    summaries = evaluate(compose_config(overrides, tmp_path / "eval", "eval"))
    GlobalHydra.instance().clear()
    assert [s["name"] for s in summaries] == ["png", "jpeg2000"] and all(s["exact"] for s in summaries)
    assert summaries[0]["codec_settings"]["compress_level"] == 9
    runs = list((tmp_path / "eval" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
