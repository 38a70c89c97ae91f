"""Training end to end on the sample photographs: fast_dev_run, real bitstreams, resume, DDP, W&B."""

import json

import pytest
import torch

from codec_networks import LearnedCodec
from tests.conftest import FAST
from vcmlab.checkpoints import load_codec, read_checkpoint
from vcmlab.compose import compose_config
from vcmlab.train import train


@pytest.mark.parametrize("experiment", ["icm_e2e", "lic_hyperprior"])
def test_fast_dev_run(experiment, make_cfg):
    metrics = train(make_cfg(f"experiment={experiment}", "debug=fdr", "logger=none"))
    assert metrics["train/bpp"] > 0 and metrics["val/bpp"] > 0
    assert torch.isfinite(torch.tensor(list(metrics.values()))).all()


def test_task_term_enters_the_loss_when_scheduled(make_cfg):
    # keyframes switch the task term on from step 0: the training task loss must be logged non-zero
    cfg = make_cfg("experiment=icm_e2e", "debug=fdr", "logger=none", "module.loss.keyframes=[]")
    metrics = train(cfg)
    assert metrics["train/w_task"] == 1.0 and metrics["train/task_loss"] > 0


def test_run_directory_is_reproducible_and_checkpoint_codes_real_bitstreams(trained_run):
    info = json.loads((trained_run / "run_info.json").read_text())
    assert info["seed"] == 1234 and info["git"]["revision"]
    assert "torch==" in (trained_run / "packages.txt").read_text()
    assert "rate_weight: 1.0" in (trained_run / "config_resolved.yaml").read_text()
    assert (trained_run / "metrics_table.csv").read_text().count("\n") == 3  # header + 2 validations
    assert list((trained_run / "reconstructions").glob("*.png"))

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    assert read_checkpoint(ckpt)["global_step"] == 8
    codec = LearnedCodec(load_codec(ckpt))
    image = torch.rand(3, 80, 112)
    data = codec.encode(image)
    receiver = load_codec(ckpt)  # a receiver built from the file alone
    trained = {
        k.removeprefix("codec."): v for k, v in read_checkpoint(ckpt)["state_dict"].items() if k.startswith("codec.")
    }
    assert all(
        torch.equal(receiver.state_dict()[k], v) for k, v in trained.items() if "_cdf" not in k and "_offset" not in k
    )
    decoded = LearnedCodec(receiver).decode(data)
    with torch.no_grad():  # the decoded image is the trained decoder's, on the rounded latent
        expected = receiver.eval()(torch.nn.functional.pad(image[None], (0, 16, 0, 48), mode="replicate"))["x_hat"]
    assert torch.allclose(decoded, expected.clamp(0, 1)[0, :, :80, :112], atol=1e-5)
    bpp = 8 * len(data) / (80 * 112)
    assert 0 < bpp < 24


def test_one_global_step_per_batch_despite_two_optimizers(trained_run):
    # max_steps=8 with log_every_n_steps=1: eight training batches logged, at steps 0..7
    rows = [line.split(",") for line in (trained_run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()]
    loss, aux, step = (rows[0].index(c) for c in ("train/loss", "train/aux_loss", "step"))
    train_rows = [r for r in rows[1:] if r[loss]]
    assert [int(r[step]) for r in train_rows] == list(range(8))
    assert all(float(r[aux]) > 0 for r in train_rows)


def test_resume_continues_the_step_count(trained_run, tmp_path):
    cfg = compose_config(
        [
            *FAST,
            "experiment=lic_hyperprior",
            "logger=none",
            "trainer.max_steps=12",
            "trainer.val_check_interval=4",
            f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        ],
        tmp_path,
    )
    train(cfg)
    resumed = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 12
    assert (
        resumed["loops"]["fit_loop"]["epoch_loop.manual_optimization.optim_step_progress"]["total"]["completed"] == 12
    )


def test_missing_and_incompatible_checkpoints_are_refused(trained_run, make_cfg):
    with pytest.raises(FileNotFoundError, match="ckpt_path not found: /nonexistent/last.ckpt"):
        train(make_cfg("experiment=lic_hyperprior", "logger=none", "ckpt_path=/nonexistent/last.ckpt"))
    cfg = make_cfg(
        "experiment=lic_hyperprior",
        "logger=none",
        "model.N=48",
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
    )
    with pytest.raises(ValueError, match="does not fit the configured model"):
        train(cfg)


def test_wandb_offline_run_directory_appears(make_cfg, tmp_path):
    train(make_cfg("experiment=lic_hyperprior", "logger=wandb", "debug=limit"))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_ddp_sim_trains_two_processes_in_sync(make_cfg, tmp_path):
    cfg = make_cfg(
        "experiment=lic_hyperprior",
        "trainer=ddp_sim",
        "logger=csv",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "+callbacks.replica_check._target_=tests.replica_check.ReplicaCheck",
    )
    metrics = train(cfg)
    assert metrics["val/bpp"] > 0
    # ReplicaCheck (run inside both processes) wrote one line per rank with a hash of every parameter
    lines = sorted((tmp_path / "replica_check").read_text().splitlines())
    assert len(lines) == 2 and lines[0].split()[1] == lines[1].split()[1]


def test_overfit_lowers_the_loss(make_cfg, tmp_path):
    cfg = make_cfg(
        "experiment=lic_hyperprior",
        "debug=overfit",
        "logger=csv",
        "trainer.max_steps=40",
        "trainer.val_check_interval=20",
        "trainer.log_every_n_steps=1",
    )
    train(cfg)
    rows = [line.split(",") for line in (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("train/loss")
    losses = [float(r[col]) for r in rows[1:] if r[col]]
    assert losses[-1] < losses[0] * 0.7


def test_aux_optimizer_moves_the_quantiles(trained_run):
    state = read_checkpoint(trained_run / "checkpoints" / "last.ckpt")["state_dict"]
    quantiles = state["codec.entropy_bottleneck.quantiles"]
    initial = torch.tensor([-10.0, 0.0, 10.0]).expand_as(quantiles)  # EntropyBottleneck's init_scale=10
    assert not torch.allclose(quantiles, initial)


def test_unreadable_or_foreign_checkpoints_are_refused(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_codec(garbage)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(ValueError, match="not a Lightning checkpoint"):
        load_codec(plain)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="no vcmlab_config"):
        load_codec(foreign)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_codec(tmp_path / "missing.ckpt")


def test_a_run_ends_with_the_codec_next_to_jpeg_and_webp_at_the_same_bpp(make_cfg, tmp_path):

    overrides = [o for o in FAST if "anchor_comparison" not in o]
    train(
        make_cfg(
            *overrides,
            "experiment=icm_e2e",
            "task=mobilenet_v2",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "logger=none",
            "callbacks.rate_points.at_steps=[]",
            fast=False,
        )
    )
    result = json.loads((tmp_path / "anchor_comparison.json").read_text())
    learned, *anchors = result["rows"]
    assert learned["name"] == "learned" and [a["name"].split("_q")[0] for a in anchors] == ["jpeg", "webp"]
    assert all("top1_agreement" in row and 0 <= row["top1_agreement"] <= 1 for row in result["rows"])
    for anchor in anchors:  # the anchor's quality is the one whose bpp is nearest the learned codec's
        curve = result["curves"][anchor["name"].split("_q")[0]]
        assert (
            min(abs(p["bpp"] - learned["bpp"]) for p in curve) == abs(anchor["bpp"] - learned["bpp"])
            and len(curve) >= 5
        )
    assert (tmp_path / "anchor_rd.png").stat().st_size > 0 and "| learned |" in (
        tmp_path / "anchor_comparison.md"
    ).read_text()
