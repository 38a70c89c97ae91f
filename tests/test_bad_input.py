"""Bad input ends in one clear error naming the file, key or value (or a correct, warned result)."""

import errno
import io
import json
import warnings

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from codec_networks.registry import FILTERS
from conventional_codecs import PillowCodec, PyAVIntraCodec, ScaledCodec
from conventional_codecs.container import SealedCodec, payload_bytes
from datamodules.image_io import ImageReadError, load_rgb
from datamodules.openimages import read_annotations
from tests.conftest import FAST, run_cli
from vcmlab import checkpoints
from vcmlab.checkpoints import AtomicCheckpointIO, read_checkpoint
from vcmlab.cli import user_error
from vcmlab.config_checks import check_config
from vcmlab.errors import BitstreamError, CheckpointError, ConfigError, InputError
from vcmlab.evaluation import build_rate_points, evaluate
from vcmlab.train import train


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_steps=abc", r"trainer\.max_steps='abc': expected int, got str"),
        ("model.N=abc", r"model\.N='abc': expected int, got str"),
        ("data.crop_size=1.5", r"data\.crop_size=1\.5: expected int"),
        ("+data.cropsize=64", r"data\.cropsize: datamodules\.SampleDataModule takes no argument 'cropsize'"),
        ("module.distortion=l1", r"module\.distortion='l1': expected 'mse' or 'ms_ssim'"),
        ("model._target_=compressai.models.Cheng2020Anchor", r"not a registered network"),
    ],
)
def test_wrong_types_and_keys_are_refused_before_anything_is_built(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(make_cfg("experiment=lic_hyperprior", "logger=none", override))


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.batch_size=0", "data: batch_size must be an integer >= 1, got 0"),
        ("data.batch_size=-2", "data: batch_size must be an integer >= 1, got -2"),
        ("data.crop_size=0", "data: crop_size must be an integer >= 1, got 0"),
        ("data.num_workers=-1", "data: num_workers must be an integer >= 0, got -1"),
    ],
)
def test_out_of_range_values_name_their_key(make_cfg, override, message):
    with pytest.raises(Exception) as info:
        train(make_cfg("experiment=lic_hyperprior", "logger=none", override))
    assert user_error(info.value) == message


def test_cli_reports_bad_input_in_one_line(tmp_path):
    result = run_cli("vcm-train", "trainer.max_steps=abc", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    # the first key to receive it may be an interpolation of trainer.max_steps (the default schedule's T_max)
    line = next(line for line in result.stderr.splitlines() if line.startswith("vcm-train: error:"))
    assert "='abc'" in line and "trainer.max_steps" in line and line.endswith("expected int, got str")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "codec, ladder, message",
    [
        ("jpeg", "[500]", r"codec.ladder value 500: jpeg quality must be an integer from 1 to 100, got 500"),
        ("webp", "[-1]", "webp quality must be an integer from 0 to 100"),
        ("hevc", "[99]", "hevc qp must be an integer from 0 to 51, got 99"),
        ("av1", "[0]", "av1 qp must be an integer from 1 to 63"),
        ("hevc", "[]", "codec.ladder must be a non-empty list"),
    ],
)
def test_ladder_values_outside_the_codec_range_are_refused(make_cfg, codec, ladder, message):
    cfg = make_cfg(f"codec={codec}", f"codec.ladder={ladder}", fast=False, config_name="eval")
    with pytest.raises(ConfigError, match=message):
        build_rate_points(cfg.codec, "cpu")


def test_a_resize_scale_too_small_for_the_encoder_says_so():
    codec = ScaledCodec(PyAVIntraCodec("hevc", 37, "ultrafast"), 0.05)
    with pytest.raises(
        InputError,
        match=r"resize scale 0.05 turns the 200x120 image into 10x6: .*too small for libx265 \(at least 16x16\)",
    ):
        codec.encode(torch.rand(3, 120, 200))


def test_missing_truncated_and_foreign_resume_checkpoints(trained_run, make_cfg, tmp_path):
    data = (trained_run / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    for name in ("truncated.ckpt", "text.ckpt"):
        with pytest.raises(
            CheckpointError,
            match=rf"cannot read ckpt_path {tmp_path / name}: truncated, corrupt or not a PyTorch checkpoint \(no zip",
        ):
            train(make_cfg("experiment=lic_hyperprior", "logger=none", f"ckpt_path={tmp_path / name}"))


def test_sigterm_saves_a_checkpoint_and_exits_non_zero(tmp_path):
    """What a cluster sends before preemption: the job must not look successful, and must keep its state."""
    result = run_cli(
        "vcm-train",
        *FAST,
        "experiment=lic_hyperprior",
        "logger=none",
        "trainer.max_steps=50",
        "trainer.val_check_interval=40",
        "+callbacks.sigterm._target_=tests.signals.SigtermAtStep",
        "+callbacks.sigterm.step=3",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
        with_tests=True,
    )
    assert result.returncode == 143, result.stderr[-2000:]
    saved = tmp_path / "run" / "checkpoints" / "preempted.ckpt"
    assert f"received SIGTERM at step 3: saved {saved}; resume with ckpt_path={saved}" in result.stderr
    assert read_checkpoint(saved)["global_step"] == 3


def test_a_full_disk_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    before = target.read_bytes()

    def full_disk(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    with pytest.raises(
        CheckpointError,
        match=r"cannot write checkpoint .*last.ckpt: No space left on device; "
        r"nothing partial .* previous file is intact",
    ):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# ------------------------------------------------------------------ streams
@pytest.fixture(scope="module")
def photo():
    from datamodules.sample import VAL_IMAGES, sample_image_paths

    return load_rgb(sample_image_paths(VAL_IMAGES)[0])[:, :96, :128]


@pytest.mark.parametrize(
    "codec",
    [PyAVIntraCodec("hevc", 32, "ultrafast"), PillowCodec("jpeg", 75), ScaledCodec(PyAVIntraCodec("av1", 40, 12), 0.5)],
)
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_conventional_streams_are_refused(photo, codec, damage):
    sealed = SealedCodec(codec)
    data = bytearray(sealed.encode(photo))
    assert sealed.decode(bytes(data)).shape == photo.shape
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    else:
        data[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError, match="checksum mismatch|truncated"):
        sealed.decode(bytes(data))


def test_payload_and_container_bytes_are_told_apart(photo):
    hevc = PyAVIntraCodec("hevc", 32, "ultrafast")
    raw = hevc.encode(photo)
    sealed = SealedCodec(ScaledCodec(hevc, 0.5))
    data = sealed.encode(photo)
    # payload = the HEVC elementary stream alone; container = 9 (seal) + 4 + 4 (two size prefixes)
    assert payload_bytes(sealed, data) == len(data) - 17
    assert payload_bytes(SealedCodec(hevc), SealedCodec(hevc).encode(photo)) == len(raw) - 4
    jpeg = SealedCodec(PillowCodec("jpeg", 75))
    stream = jpeg.encode(photo)
    assert payload_bytes(jpeg, stream) == len(stream) - 9  # a JPEG file is all payload


# ------------------------------------------------------------------ images and annotations
def _jpeg_bytes(array) -> bytearray:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=85)
    return bytearray(buffer.getvalue())


def test_jpeg_with_corrupt_entropy_coded_data_is_refused(tmp_path):
    import skimage.data

    data = _jpeg_bytes(skimage.data.astronaut())
    (tmp_path / "good.jpg").write_bytes(data)
    assert load_rgb(tmp_path / "good.jpg").shape == (3, 512, 512)
    for i in range(len(data) // 2, len(data) // 2 + 200):
        data[i] ^= 0x55
    (tmp_path / "bad.jpg").write_bytes(data)
    with Image.open(tmp_path / "bad.jpg") as image:
        image.load()  # what used to happen: Pillow decodes it without a word
    with pytest.raises(ImageReadError, match=r"bad.jpg: corrupt JPEG data"):
        load_rgb(tmp_path / "bad.jpg")


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match=r"big.png: .*decompression bomb.*MAX_IMAGE_PIXELS"):
        load_rgb(tmp_path / "big.png")


def _bbox_csv(tmp_path, rows: list[str]):
    path = tmp_path / "boxes.csv"
    path.write_text("\n".join(["ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf", *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "img1,dog,0.5,0.2,0.1,0.9,0",
            r"boxes.csv:3: box .* of image img1 is not inside the unit square with min <= max",
        ),
        ("img1,dog,0.1,1.3,0.1,0.9,0", r"boxes.csv:3: box .* not inside the unit square"),
        ("img1,dog,0.1,abc,0.1,0.9,0", r"boxes.csv:3: XMax='abc' is not a number"),
        ("img1,dog,0.1,0.5", r"boxes.csv:3: the row's number of fields differs from the header's"),
    ],
)
def test_invalid_openimages_boxes_are_errors_with_file_and_line(tmp_path, row, message):
    path = _bbox_csv(tmp_path, ["img0,cat,0.1,0.5,0.2,0.6,0", row])
    with pytest.raises(InputError, match=message):
        read_annotations(path)


def test_invalid_boxes_can_be_dropped_with_a_warning(tmp_path):
    path = _bbox_csv(
        tmp_path, ["img0,cat,0.1,0.5,0.2,0.6,0", "img1,dog,0.5,0.2,0.1,0.9,0", "img1,dog,0.1,0.3,0.1,0.9,1"]
    )
    with pytest.warns(UserWarning, match="dropped 1 invalid boxes"):
        annotations = read_annotations(path, invalid_boxes="drop")
    assert annotations["img1"].boxes == [(0.1, 0.1, 0.3, 0.9)] and annotations["img1"].group_of == [True]


def test_every_hint_works_when_followed(make_cfg):
    """The crop-too-small error suggests data.on_bad_image=skip: the sample datamodule takes it."""
    datamodule = instantiate(make_cfg("data.crop_size=520", fast=False).data)
    datamodule.setup("fit")
    with pytest.raises(InputError, match="lower data.crop_size or set data.on_bad_image=skip"):
        datamodule.datasets["train"][1]  # camera.png is 512x512
    datamodule = instantiate(make_cfg("data.crop_size=520", "data.on_bad_image=skip", fast=False).data)
    datamodule.setup("fit")
    with pytest.warns(UserWarning, match="skipping unusable image"):
        item = datamodule.datasets["train"][1]
    assert item["image"].shape == (3, 520, 520)


def test_skipped_images_are_left_out_of_evaluation_not_replaced(tmp_path, make_cfg):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, size in (("a", (64, 48)), ("c", (80, 64))):
        Image.new("RGB", size, (90, 120, 30)).save(folder / f"{name}.png")
    (folder / "b.png").write_bytes(b"not an image")
    cfg = make_cfg(
        "data=image_folder",
        "data.train_dir=null",
        f"data.test_dir={folder}",
        "data.on_bad_image=skip",
        "codec=jpeg",
        "codec.ladder=[80,40]",
        fast=False,
        config_name="eval",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summaries = evaluate(cfg)
    assert [s["images"] for s in summaries] == [2, 2] and [s["skipped_images"] for s in summaries] == [1, 1]
    rows = (tmp_path / "jpeg_q80" / "per_image.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["a", "c"]
    assert summaries[0]["container_bytes"] == 9 and summaries[0]["file_bpp"] > summaries[0]["bpp"]


# ------------------------------------------------------------------ vcm-bdrate input
@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.csv", "bpp,psnr\n0.1,30\n0.2,abc\n0.3,34\n0.4,35\n", r"bad.csv, line 3: psnr='abc' is not a number"),
        ("ragged.csv", "bpp,psnr\n0.1,30\n0.2\n0.3,34\n0.4,35\n", r"ragged.csv:3: the row's number of fields differs"),
        ("cut.json", '[{"bpp": 0.1, "psnr": 30}, {"bpp": 0.2, "ps', r"cut.json: not valid JSON, truncated or corrupt"),
        (
            "nan.json",
            json.dumps([{"bpp": 0.1, "psnr": float("nan")}] * 4),
            r"nan.json, rate point 0: psnr=nan is not finite",
        ),
    ],
)
def test_vcm_bdrate_names_the_bad_file_and_row(tmp_path, name, text, message):
    from vcm_metrics.bd_rate import BDRateError
    from vcmlab.bdrate import read_curve

    (tmp_path / name).write_text(text)
    with pytest.raises(BDRateError, match=message):
        read_curve(tmp_path / name, "psnr")
    result = run_cli("vcm-bdrate", str(tmp_path / name), str(tmp_path / name), cwd=tmp_path)
    assert result.returncode == 2 and name in result.stderr and "Traceback" not in result.stderr


def test_filter_registry_checks_types():
    from codec_networks.registry import build_network

    with pytest.raises(CheckpointError, match=r"filters.channels='8': expected int, got str"):
        build_network({"_target_": "codec_networks.postfilters.FilterBank", "channels": "8"}, FILTERS, "filters")
    bank = build_network(
        {"_target_": "codec_networks.postfilters.FilterBank", "filters": 2, "channels": 8, "blocks": 1, "qp_max": 51},
        FILTERS,
        "filters",
    )
    assert len(bank) == 2 and bank.filters[0].qp_max == 51.0
