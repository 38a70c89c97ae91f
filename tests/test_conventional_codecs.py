import shutil

import pytest
import torch

from conventional_codecs import CodecError, ImageCodec, PillowCodec, PyAVIntraCodec, ScaledCodec, VVCBinaryCodec
from datamodules import load_rgb
from datamodules.sample import VAL_IMAGES, sample_image_paths
from vcm_metrics import psnr


@pytest.fixture(scope="module")
def photo():
    return load_rgb(sample_image_paths(VAL_IMAGES[:1])[0])[:, :201, :257]  # real photo, odd size


CODECS = [
    lambda q: PillowCodec("jpeg", quality={"hi": 90, "lo": 20}[q]),
    lambda q: PillowCodec("webp", quality={"hi": 90, "lo": 20}[q]),
    lambda q: PyAVIntraCodec("hevc", qp={"hi": 22, "lo": 42}[q]),
    lambda q: PyAVIntraCodec("av1", qp={"hi": 20, "lo": 55}[q]),
]


@pytest.mark.parametrize("make", CODECS)
def test_round_trip_and_rate_quality_order(make, photo):
    hi, lo = make("hi"), make("lo")
    assert isinstance(hi, ImageCodec)
    data_hi, data_lo = hi.encode(photo), lo.encode(photo)
    dec_hi, dec_lo = hi.decode(data_hi), lo.decode(data_lo)
    assert dec_hi.shape == photo.shape == dec_lo.shape
    assert len(data_lo) < len(data_hi)  # lower quality, fewer bytes ...
    q_hi, q_lo = psnr(dec_hi[None], photo[None]).item(), psnr(dec_lo[None], photo[None]).item()
    assert q_hi > q_lo > 20  # ... and lower (but sane) PSNR
    assert torch.equal(hi.decode(data_hi), dec_hi)  # deterministic


@pytest.mark.parametrize("make", CODECS)
def test_corrupt_streams_give_codec_errors(make, photo):
    codec = make("hi")
    data = codec.encode(photo)
    with pytest.raises(CodecError):
        codec.decode(data[:3])
    with pytest.raises(CodecError):
        codec.decode(data[:4] + b"\x00" * 64)


def test_resize_ladder_codes_fewer_bytes_and_restores_size(photo):
    full, half = PyAVIntraCodec("hevc", qp=32), ScaledCodec(PyAVIntraCodec("hevc", qp=32), 0.5)
    data_full, data_half = full.encode(photo), half.encode(photo)
    assert half.name == "hevc_qp32_s50"
    assert len(data_half) < 0.6 * len(data_full)
    decoded = half.decode(data_half)
    assert decoded.shape == photo.shape and psnr(decoded[None], photo[None]) > 20


def test_missing_vvc_binary_names_it(tmp_path):
    with pytest.raises(CodecError, match="vvencapp.*not found.*never downloads"):
        VVCBinaryCodec("vvenc", encoder_path=str(tmp_path / "vvencapp"))
    with pytest.raises(ValueError, match="encoder_intra_vtm.cfg"):
        VVCBinaryCodec("vtm")


def test_vvc_commands_are_argument_lists(tmp_path):
    fake = tmp_path / "vvencapp"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    codec = VVCBinaryCodec("vvenc", qp=37, encoder_path=str(fake))
    command = codec.encoder_command(tmp_path / "a.yuv", tmp_path / "b.266", 64, 48)
    assert command[0] == str(fake) and command[command.index("--qp") : command.index("--qp") + 2] == ["--qp", "37"]
    assert "64x48" in command
    with pytest.raises(CodecError, match="vvencapp failed \\(exit 3\\)"):
        codec.encode(torch.rand(3, 48, 64))


@pytest.mark.skipif(shutil.which("vvencapp") is None, reason="VVenC's vvencapp not on PATH")
def test_vvenc_round_trip_with_real_binary(photo):
    hi, lo = VVCBinaryCodec("vvenc", qp=27), VVCBinaryCodec("vvenc", qp=42)
    data_hi, data_lo = hi.encode(photo), lo.encode(photo)
    assert len(data_lo) < len(data_hi)
    assert psnr(hi.decode(data_hi)[None], photo[None]) > psnr(lo.decode(data_lo)[None], photo[None])


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_encoder_threads_do_not_change_the_stream(codec, photo):
    """vcm-eval's anchors run one encoder thread per worker; the stream must be the default's."""
    one = PyAVIntraCodec(codec, 32, preset=8 if codec == "av1" else "medium", threads=1)
    default = PyAVIntraCodec(codec, 32, preset=8 if codec == "av1" else "medium")
    assert one.settings["threads"] == 1 and ("pools=1" in str(one.options) or "lp=1" in str(one.options))
    assert one.encode(photo) == default.encode(photo)
    with pytest.raises(Exception, match="threads must be an integer from 1"):
        PyAVIntraCodec(codec, 32, threads=0)
