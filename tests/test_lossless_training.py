"""Method 7 through the training path: experiment=lossless_msp trains on bpsp, validates on real
byte-checked bitstreams, resumes, runs under DDP, and its checkpoints evaluate in vcm-eval codec=lossless."""

import json

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from codec_networks.lossless_msp import LosslessMSP
from lightning_modules import LosslessModule
from tests.helpers import write_image
from vcmlab.checkpoints import read_checkpoint
from vcmlab.compose import compose_config
from vcmlab.errors import ConfigError
from vcmlab.train import train

SMALL = [
    "experiment=lossless_msp",
    "model.levels=3",
    "model.components=2",
    "model.hidden=8",
    "data.crop_size=32",
    "data.val_crop_size=40",
    "data.batch_size=2",
    "data.train_repeats=1",
    "logger=csv",
    "trainer.log_every_n_steps=1",
]


def metrics_rows(run):
    lines = (run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


@pytest.fixture(scope="module")
def lossless_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lossless_run")
    train(compose_config([*SMALL, "trainer.max_steps=6", "trainer.val_check_interval=3"], out))
    GlobalHydra.instance().clear()
    return out


def test_training_logs_bpsp_from_byte_checked_files(lossless_run):
    rows = metrics_rows(lossless_run)
    train_bpsp = [float(r["train/bpsp"]) for r in rows if r.get("train/bpsp")]
    val = [r for r in rows if r.get("val/bpsp")]
    assert len(train_bpsp) == 6 and len(val) == 2
    # the files carry ~30 bytes of container over the model's own bits (2 images of 40x40x3); the
    # encoder's scale offsets only ever lower them (an untrained model's estimate is far too high)
    for r in val:
        estimate = float(r["val/bpsp_est"])
        assert 1.0 < float(r["val/bpsp"]) < estimate + 8 * 64 / (40 * 40 * 3)
        assert float(r["val/decode_s"]) > 0
    checkpoint = read_checkpoint(lossless_run / "checkpoints" / "last.ckpt")
    assert checkpoint["vcmlab_config"]["model"]["_target_"] == "codec_networks.lossless_msp.LosslessMSP"
    assert list(lossless_run.glob("checkpoints/best-step*.ckpt"))  # monitored val/bpsp


def test_resume_continues_the_step_count(lossless_run, tmp_path):
    cfg = compose_config(
        [
            *SMALL,
            "trainer.max_steps=8",
            "trainer.val_check_interval=4",
            f"ckpt_path={lossless_run}/checkpoints/last.ckpt",
        ],
        tmp_path,
    )
    train(cfg)
    GlobalHydra.instance().clear()
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 8


def test_ddp_sim_keeps_the_replicas_in_sync(tmp_path):
    cfg = compose_config(
        [
            *SMALL,
            "trainer=ddp_sim",
            "trainer.max_steps=3",
            "trainer.val_check_interval=3",
            "+callbacks.replica_check._target_=tests.replica_check.ReplicaCheck",
        ],
        tmp_path,
    )
    metrics = train(cfg)
    GlobalHydra.instance().clear()
    assert metrics["val/bpsp"] > 0
    lines = sorted((tmp_path / "replica_check").read_text().splitlines())
    assert len(lines) == 2 and lines[0].split()[1] == lines[1].split()[1]


def test_the_module_refuses_what_it_cannot_train():
    with pytest.raises(ConfigError, match="no machine task"):
        LosslessModule(LosslessMSP(hidden=8), task=torch.nn.Identity())
    with pytest.raises(ConfigError, match="order"):
        LosslessModule(LosslessMSP(hidden=8), order="zigzag")


def test_vcm_eval_codes_the_checkpoint_next_to_the_anchors(lossless_run, tmp_path):
    from vcmlab.evaluation import evaluate

    ckpt = lossless_run / "checkpoints" / "last.ckpt"
    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "rgb.png", size=(37, 29))
    write_image(photos / "gray.png", size=(21, 33), mode="L")  # an RGB model codes it as 3 equal channels
    folder = ["data=image_folder", f"data.train_dir={photos}", f"data.val_dir={photos}", "data.num_workers=0"]
    cfg = compose_config(
        ["codec=lossless", f"codec.ckpt_paths=[{ckpt}]", "codec.anchors=[png,webp]", "codec.order=entropy", *folder],
        tmp_path / "eval",
        "eval",
    )
    summaries = evaluate(cfg)
    GlobalHydra.instance().clear()
    assert [s["name"] for s in summaries] == ["lossless_msp_0", "png", "webp_lossless"]
    model = summaries[0]
    assert model["exact"] and model["images"] == 2 and model["codec_settings"]["order"] == "entropy"
    assert len(list((tmp_path / "eval" / "lossless_msp_0" / "bitstreams").glob("*.bin"))) == 2
    assert json.loads((tmp_path / "eval" / "summaries.json").read_text()) == summaries
    assert "| png |" in (tmp_path / "eval" / "lossless_table.md").read_text()
    rows = (tmp_path / "eval" / "lossless_msp_0" / "per_image.csv").read_text().splitlines()
    assert rows[0].startswith("name,height,width,channels,bytes,bpsp") and {r.split(",")[3] for r in rows[1:]} == {
        "1",
        "3",
    }
    # the lossy evaluation refuses the lossless checkpoint with a pointer to codec=lossless
    cfg = compose_config([f"codec.ckpt_paths=[{ckpt}]", *folder], tmp_path / "lossy", "eval")
    with pytest.raises(ConfigError, match="codec=lossless"):
        evaluate(cfg)
    GlobalHydra.instance().clear()
