"""The anchors' colour pipeline and encoder settings: what the standards' reference practice does."""

import csv

import av
import numpy as np
import pytest
import torch

from conventional_codecs import PyAVIntraCodec, VVCBinaryCodec
from conventional_codecs.colour import ColourFormat, frame_from_planes, planes_from_frame
from datamodules.image_io import load_rgb
from datamodules.sample import TRAIN_IMAGES, sample_image_paths
from vcm_metrics import psnr, yuv_psnr
from vcmlab.errors import ConfigError


@pytest.fixture(scope="module")
def astronaut():
    return load_rgb(sample_image_paths(TRAIN_IMAGES)[0])  # 512x512, 8-bit


def round_trip(colour: ColourFormat, image: torch.Tensor) -> torch.Tensor:
    """Uncoded: RGB -> planes -> a PyAV frame -> planes -> RGB, rounded to 8 bits as a decoder outputs."""
    back = colour.from_planes(planes_from_frame(frame_from_planes(colour.to_planes(image), colour), colour))
    return (back * 255).round() / 255


def float_reference(image: torch.Tensor) -> torch.Tensor:
    """The same 4:2:0 conversion in float64 with no quantisation: what chroma subsampling alone costs."""
    colour = ColourFormat()
    kr, kb = 0.299, 0.114
    r, g, b = image.double()
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    down = [torch.nn.functional.avg_pool2d(c[None, None], 2) for c in (cb, cr)]
    cb, cr = (torch.nn.functional.interpolate(c, size=y.shape, mode="bicubic", align_corners=False)[0, 0] for c in down)
    r, b = y + 2 * (1 - kr) * cr, y + 2 * (1 - kb) * cb
    assert colour.chroma == "420"
    return torch.stack([r, (y - kr * r - kb * b) / (1 - kr - kb), b]).clamp(0, 1).float()


def test_uncoded_420_round_trip_reaches_a_correct_conversion(astronaut):
    ours = float(psnr(round_trip(ColourFormat(), astronaut)[None], astronaut[None]))
    reference = float(psnr(float_reference(astronaut)[None], astronaut[None]))
    rgb = (astronaut * 255).round().byte().permute(1, 2, 0).numpy()
    swscale = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
    default = float(psnr(torch.from_numpy(swscale).permute(2, 0, 1)[None].float() / 255, astronaut[None]))
    assert reference == pytest.approx(41.82, abs=0.05)  # measured: astronaut, BT.601, 2x2 mean down, bicubic up
    assert ours > reference - 0.35  # 8-bit planes cost ~0.3 dB
    assert ours > default + 2.5  # swscale's defaults, what the anchors used before: 38.5 dB
    ten_bit = float(psnr(round_trip(ColourFormat(bit_depth=10), astronaut)[None], astronaut[None]))
    assert ours < ten_bit < reference + 0.01


def test_444_is_lossless_to_within_rounding(astronaut):
    assert torch.equal(round_trip(ColourFormat(chroma="444", bit_depth=10), astronaut), astronaut)
    eight_bit = round_trip(ColourFormat(chroma="444"), astronaut)
    assert (eight_bit - astronaut).abs().max() <= 2 / 255 + 1e-6  # 8-bit limited-range Y'CbCr rounding
    full = round_trip(ColourFormat(chroma="444", range="full", matrix="bt709", bit_depth=10), astronaut)
    assert torch.equal(full, astronaut)


def test_planes_survive_pyav_frames_of_any_line_size():
    rng = np.random.default_rng(0)
    for colour in (
        ColourFormat(),
        ColourFormat(bit_depth=10),
        ColourFormat(chroma="444"),
        ColourFormat(chroma="444", bit_depth=10),
    ):
        h, w = 38, 90  # 90 is not a multiple of FFmpeg's line alignment
        ch, cw = (h // 2, w // 2) if colour.chroma == "420" else (h, w)
        planes = [
            rng.integers(0, 2**colour.bit_depth, size=s).astype(colour.dtype) for s in ((h, w), (ch, cw), (ch, cw))
        ]
        back = planes_from_frame(frame_from_planes(planes, colour), colour)
        assert all(np.array_equal(a, b) for a, b in zip(planes, back))
        raw = colour.raw_bytes(planes)
        assert all(np.array_equal(a, b) for a, b in zip(planes, colour.planes_from_raw(raw, h, w)))


def test_bad_colour_settings_are_refused():
    with pytest.raises(ConfigError, match="colour.matrix"):
        ColourFormat(matrix="bt2020")
    with pytest.raises(ConfigError, match="colour.chroma"):
        ColourFormat(chroma="422")
    with pytest.raises(ConfigError, match="SVT-AV1 codes 4:2:0 only"):
        PyAVIntraCodec("av1", 30, colour={"chroma": "444"})


@pytest.mark.parametrize("qp", [22, 37])
def test_x265_codes_the_intra_picture_at_the_configured_qp(astronaut, tmp_path, qp):
    """x265's own frame log: with its default ipratio (1.4) qp=N codes the I picture at N-3."""
    codec = PyAVIntraCodec("hevc", qp, "ultrafast")
    log = tmp_path / "frames.csv"
    codec.options = {**codec.options, "x265-params": codec.options["x265-params"] + f":csv={log}:csv-log-level=1"}
    codec.encode(astronaut[:, :128, :128])
    with open(log) as f:
        rows = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]
    assert [(r["Type"], float(r["QP"])) for r in rows] == [("I-SLICE", float(qp))]
    params = codec.settings["options"]["x265-params"].split(":")
    assert {"ipratio=1", "psy-rd=0", "psy-rdoq=0", "aq-mode=0"} <= set(params)


def test_hevc_444_and_10_bit_code_what_they_say(astronaut):
    image = astronaut[:, :96, :128]
    for colour, pix_fmt in (({"chroma": "444"}, "yuv444p"), ({"bit_depth": 10}, "yuv420p10le")):
        codec = PyAVIntraCodec("hevc", 22, "ultrafast", colour=colour)
        data = codec.encode(image)
        with av.open(__import__("io").BytesIO(data[4:]), format="hevc") as container:
            assert next(container.decode(video=0)).format.name == pix_fmt
        assert float(psnr(codec.decode(data)[None], image[None])) > 36
        assert codec.settings["pix_fmt"] == pix_fmt


def test_settings_name_the_preset_and_every_option():
    av1 = PyAVIntraCodec("av1", 36, 4)
    assert av1.name == "av1_p4_qp36" and av1.settings["options"] == {
        "qp": "36",
        "preset": "4",
        "svtav1-params": "tune=1",
    }
    assert av1.settings["colour"]["matrix"] == "bt601" and av1.settings["colour"]["bit_depth"] == 8


def test_vvc_anchor_commands(tmp_path):
    fake = tmp_path / "vvencapp"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    anchor = VVCBinaryCodec("vvenc", qp=37, encoder_path=str(fake), colour={"bit_depth": 10})
    command = anchor.encoder_command(tmp_path / "a.yuv", tmp_path / "b.266", 64, 48)
    assert command[command.index("--qpa") + 1] == "0" and command[command.index("--format") + 1] == "yuv420_10"
    perceptual = VVCBinaryCodec("vvenc", qp=37, encoder_path=str(fake), perceptual=True)
    command = perceptual.encoder_command(tmp_path / "a", tmp_path / "b", 8, 8)
    assert perceptual.name == "vvc_vvenc_qpa_qp37" and command[command.index("--qpa") + 1] == "1"
    with pytest.raises(ConfigError, match="VVenC codes 4:2:0 only"):
        VVCBinaryCodec("vvenc", encoder_path=str(fake), colour={"chroma": "444"})
    vtm = tmp_path / "EncoderAppStatic"
    vtm.write_text("#!/bin/sh\nexit 3\n")
    vtm.chmod(0o755)
    command = VVCBinaryCodec(
        "vtm", qp=32, encoder_path=str(vtm), config="intra.cfg", colour={"chroma": "444", "bit_depth": 10}
    ).encoder_command(tmp_path / "a.yuv", tmp_path / "b.266", 64, 48)
    assert {"--InputBitDepth=10", "--InternalBitDepth=10", "--InputChromaFormat=444", "--ChromaFormatIDC=444"} <= set(
        command
    )
    assert command[command.index("-c") + 1] == "intra.cfg"


def test_yuv_psnr_weights_luma_six_to_one(astronaut):
    noisy = (astronaut + 0.01 * torch.randn_like(astronaut)).clamp(0, 1)
    values = yuv_psnr(noisy, astronaut)
    assert values["psnr_yuv"] == pytest.approx((6 * values["psnr_y"] + values["psnr_u"] + values["psnr_v"]) / 8)
    assert yuv_psnr(astronaut, astronaut)["psnr_y"] == pytest.approx(120.0)
