"""Latent overfitting lowers the objective it optimises on held-out real photos, measured on real
bitstreams decoded by a decoder that knows nothing of it."""

import json

import pytest
import torch

from codec_networks import LearnedCodec
from codec_networks.latent_overfitting import LatentOverfitter, _quantize
from datamodules import load_rgb
from datamodules.sample import VAL_IMAGES, sample_image_paths
from task_networks import TorchvisionDetector
from tests.conftest import run_cli
from vcmlab.checkpoints import load_codec

LAMBDA = 0.013


@pytest.fixture(scope="module")
def photos():
    return [load_rgb(p)[:, 20:148, 40:168] for p in sample_image_paths(VAL_IMAGES)]  # held out from training


def real_objective(data: bytes, decoder: LearnedCodec, image: torch.Tensor) -> float:
    decoded = decoder.decode(data)
    return (
        8 * len(data) / (image.shape[-2] * image.shape[-1]) + LAMBDA * float((decoded - image).pow(2).mean()) * 255**2
    )


@pytest.mark.parametrize("surrogate", ["noise", "ste", "sga"])
def test_lof_lowers_the_real_rd_objective(trained_run, photos, surrogate):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    decoder = LearnedCodec(load_codec(ckpt))  # unchanged decoder
    plain = LearnedCodec(load_codec(ckpt))
    lof = LearnedCodec(
        load_codec(ckpt),
        latent_refiner=LatentOverfitter(steps=25, lr=2e-2, distortion_weight=LAMBDA, surrogate=surrogate),
    )
    for image in photos:
        before = real_objective(plain.encode(image), decoder, image)
        after = real_objective(lof.encode(image), decoder, image)
        assert after < before


def test_machine_objective_uses_the_task_network(trained_run, photos):
    torch.manual_seed(0)
    task = TorchvisionDetector(arch="fasterrcnn_resnet50_fpn", loss="features")
    model = load_codec(trained_run / "checkpoints" / "last.ckpt").eval()
    refiner = LatentOverfitter(steps=8, lr=2e-2, distortion_weight=0.0, task_weight=1.0, task=task, surrogate="ste")
    x = photos[0][None]
    with torch.no_grad():
        y = model.g_a(x)
    refined = refiner(model, x, y)
    with torch.no_grad():
        torch.manual_seed(1)
        before = float(refiner.objective(model, x, y, 0))
        torch.manual_seed(1)
        after = float(refiner.objective(model, x, refined, 0))
    assert after < before
    assert all(p.grad is None for p in model.parameters()) and all(p.grad is None for p in task.parameters())


def test_surrogates_and_validation():
    v = torch.tensor([0.2, 1.7, -0.4])
    assert torch.equal(_quantize(v, "ste", 1.0), torch.round(v))
    assert ((_quantize(v, "noise", 1.0) - v).abs() <= 0.5).all()
    soft = _quantize(v, "sga", 1e-3)  # near-zero temperature: (almost) hard rounding
    assert torch.allclose(soft, torch.round(v), atol=1e-2)
    with pytest.raises(ValueError, match="noise, ste or sga"):
        LatentOverfitter(surrogate="round")
    with pytest.raises(ValueError, match="needs a task network"):
        LatentOverfitter(task_weight=1.0)


def test_vcm_eval_with_lof_lowers_the_rd_cost_of_the_same_checkpoint(trained_run, tmp_path):
    """Through the CLI: the same checkpoint with and without LOF, the cost bpp + λ·MSE(0..255) of every
    image recomputed from vcm-eval's per-image rows (real bitstreams, decoded by the plain decoder)."""
    import csv

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    common = [f"codec.ckpt_paths=[{ckpt}]", "data.val_crop_size=64", f"paths.log_dir={tmp_path}"]
    runs = {"plain": ["codec=checkpoints"], "lof": ["codec=checkpoints_lof", "codec.latent_refiner.steps=25"]}
    costs = {}
    for name, overrides in runs.items():
        result = run_cli("vcm-eval", *overrides, *common, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        with open(tmp_path / name / "rate_point_0" / "per_image.csv") as f:
            rows = list(csv.DictReader(f))
        costs[name] = [float(r["file_bpp"]) + LAMBDA * 255**2 * 10 ** (-float(r["psnr"]) / 10) for r in rows]
    assert len(costs["lof"]) == len(costs["plain"]) == 2
    assert sum(costs["lof"]) < sum(costs["plain"])
    summary = json.loads((tmp_path / "lof" / "summaries.json").read_text())[0]
    assert summary["encode_s"] > summary["decode_s"]  # the encoder did the extra work
    assert summary["codec_settings"]["latent_refiner"]["distortion_weight"] == LAMBDA  # the checkpoint's own λ


def test_refiner_takes_each_checkpoints_own_lambda():
    """codec.latent_refiner.distortion_weight=null: every rate point overfits with the λ it was trained
    with; a checkpoint without one is refused, naming the setting."""
    from omegaconf import OmegaConf

    from vcmlab.errors import ConfigError
    from vcmlab.evaluation.rate_points import build_refiner

    cfg = OmegaConf.create(
        {"_target_": "codec_networks.latent_overfitting.LatentOverfitter", "distortion_weight": None}
    )
    stored = {"vcmlab_config": {"module": {"loss": {"distortion_weight": 0.0025}}}}
    assert build_refiner(cfg, stored, "a.ckpt").weights == (1.0, 0.0025, 0.0)
    fixed = OmegaConf.merge(cfg, {"distortion_weight": 0.02})
    assert build_refiner(fixed, stored, "a.ckpt").weights == (1.0, 0.02, 0.0)
    with pytest.raises(ConfigError, match="b.ckpt has none: set codec.latent_refiner.distortion_weight"):
        build_refiner(cfg, {"vcmlab_config": {"module": {}}}, "b.ckpt")
    ms_ssim = {"vcmlab_config": {"module": {"distortion": "ms_ssim", "loss": {"distortion_weight": 8.0}}}}
    with pytest.raises(ConfigError, match="has none"):
        build_refiner(cfg, ms_ssim, "c.ckpt")
