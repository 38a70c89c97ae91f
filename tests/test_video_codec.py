"""The GOP codec interface on ScaleSpaceFlow: one file per GOP with recoverable per-frame sizes, the same
frames when decoded in another process, damaged files refused, and motion in pixels at any resolution."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from codec_networks.video_codec import LearnedVideoCodec, PixelFlowSSF, frame_sizes
from vcmlab.errors import BitstreamError, ConfigError


def shifted_prediction(model, size: int, shift_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x_ref = F.interpolate(torch.rand(1, 3, 16, 16), size=(size, size), mode="bicubic", align_corners=False)
    motion = torch.zeros(1, 3, size, size)
    motion[:, 0] = shift_px  # x flow
    motion[:, 2] = -1.0  # scale field at the unblurred end of the volume
    with torch.no_grad():
        return model.forward_prediction(x_ref, motion), x_ref


def test_a_uniform_shift_moves_content_by_the_same_pixels_at_two_resolutions():
    model = PixelFlowSSF()
    for size in (64, 128):
        pred, ref = shifted_prediction(model, size, 2.0)
        assert torch.allclose(pred[..., :-2], ref[..., 2:], atol=1e-5), size  # sampled 2 pixels to the right
    from compressai.models.video import ScaleSpaceFlow

    pred, ref = shifted_prediction(ScaleSpaceFlow(), 64, 2.0 * 2 / 64)  # CompressAI's units: 2/W per pixel
    assert torch.allclose(pred[..., :-2], ref[..., 2:], atol=1e-5)
    pred, ref = shifted_prediction(ScaleSpaceFlow(), 128, 2.0 * 2 / 64)  # the same flow value, twice the size
    assert not torch.allclose(pred[..., :-2], ref[..., 2:], atol=1e-3)  # ... moves 4 pixels: the bug fixed here


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return LearnedVideoCodec(PixelFlowSSF())


def test_a_gop_round_trips_through_one_file_in_another_process(codec, tmp_path):
    frames = torch.rand(3, 3, 40, 72)
    data = codec.encode(frames)
    sizes = frame_sizes(data)
    assert len(sizes) == 3 and 2 + sum(sizes) == len(data)  # one-byte frame count and intra period, then the frames
    decoded = codec.decode(data)
    assert decoded.shape == frames.shape
    (tmp_path / "gop.bin").write_bytes(data)
    torch.save(codec.model.state_dict(), tmp_path / "model.pt")
    torch.save(decoded, tmp_path / "decoded.pt")
    script = f"""
import torch
from codec_networks.video_codec import LearnedVideoCodec, PixelFlowSSF
model = PixelFlowSSF()
model.load_state_dict(torch.load({str(tmp_path / "model.pt")!r}, weights_only=True), strict=False)
codec = LearnedVideoCodec(model)
again = codec.decode(open({str(tmp_path / "gop.bin")!r}, "rb").read())
assert torch.equal(again, torch.load({str(tmp_path / "decoded.pt")!r}, weights_only=True))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, cwd=Path(__file__).parents[1])


def test_an_intra_period_starts_independent_gops(codec):
    from codec_networks.video_codec import frame_types

    frames = torch.rand(5, 3, 32, 48)
    periodic = LearnedVideoCodec(codec.model, intra_period=2)
    data = periodic.encode(frames)
    assert frame_types(data) == ["I", "P", "I", "P", "I"]
    decoded = periodic.decode(data)
    assert decoded.shape == frames.shape
    # the second GOP decodes exactly as if it had been coded alone
    assert torch.equal(decoded[2:4], periodic.decode(periodic.encode(frames[2:4])))
    with pytest.raises(ConfigError, match="intra_period"):
        LearnedVideoCodec(codec.model, intra_period=0)


def test_damaged_gop_files_are_refused(codec):
    data = codec.encode(torch.rand(2, 3, 64, 64))
    with pytest.raises(BitstreamError):
        codec.decode(data[:-5])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x04
    with pytest.raises(BitstreamError):
        codec.decode(bytes(flipped))
    with pytest.raises(BitstreamError, match="after its 2 frames"):
        codec.decode(data + b"\0")


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_low_delay_anchors_code_one_intra_picture_per_intra_period(codec):
    from conventional_codecs.pyav_video import PyAVVideoCodec
    from vcm_metrics import psnr

    y, x = torch.meshgrid(torch.arange(71), torch.arange(95), indexing="ij")  # odd: padded, cropped back
    frames = torch.stack(
        [
            torch.stack([0.5 + 0.3 * torch.sin((x + 3 * t) / 6.0), 0.5 + 0.2 * torch.cos(y / 5.0), 0.4 + 0 * x])
            for t in range(9)
        ]
    ).float()
    anchor = PyAVVideoCodec(codec, qp=30, intra_period=4)
    data = anchor.encode(frames)
    assert anchor.frame_types(data) == ["I", "P", "P", "P", "I", "P", "P", "P", "I"]
    sizes = anchor.frame_sizes(data)
    assert len(sizes) == 9 and sum(sizes) == anchor.payload_bytes(data) and min(sizes[0], sizes[4]) > max(sizes[1:4])
    decoded = anchor.decode(data)
    assert decoded.shape == frames.shape and float(psnr(decoded, frames).mean()) > 35
    assert anchor.settings["structure"] == "low-delay P"
    if codec == "hevc":
        assert "bframes=0" in anchor.options["x265-params"] and "scenecut=0" in anchor.options["x265-params"]
    with pytest.raises(BitstreamError):
        anchor.decode(data[: len(data) // 2])
    # the last stream's decode is kept for frame_types/decode_planes; a failed one does not replace it wrongly
    assert torch.equal(anchor.decode(data), decoded) and anchor.frame_types(data)[4] == "I"
    assert anchor.frame_types(anchor.encode(frames[:2])) == ["I", "P"]


def test_the_model_pickles_for_ddp_spawn(codec):
    import pickle

    from codec_networks.entropy_state import fingerprint

    again = pickle.loads(pickle.dumps(codec.model))  # CompressAI's SSF alone cannot be pickled
    assert fingerprint(again) == fingerprint(codec.model) and type(again) is PixelFlowSSF
