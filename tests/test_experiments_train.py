"""Every file in conf/experiment/ trains for one step (debug=fdr), found by glob: a new experiment is
covered the day it is added. Only sizes and data locations are shrunk; what each experiment composes
(module, task network, schedule) is its own."""

import math

import pytest

from datamodules.openimages import read_subset_list
from tests.conftest import FILTERS_FAST, SHARED_DATA
from tests.helpers import write_image
from vcmlab import CONF_DIR
from vcmlab.train import train

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
OIV6 = SHARED_DATA / "oiv6-mpeg-vcm"
CODEC_SIZES = ["model.N=32", "model.M=48", "data.crop_size=64", "data.batch_size=2"]
FILTER_DATA = [o for o in FILTERS_FAST if not o.startswith("experiment=")]
MODEL_SIZES = {  # experiments whose models take other arguments than N and M
    "lossless_msp": ["model.hidden=8", "model.components=2", "model.levels=3", "data.crop_size=32"],
    "video_ssf": ["data.crop_size=64", "data.clip_length=2", "data.val_clip_length=2", "data.batch_size=1"],
    "video_e2e": [
        *("model.N=16", "model.M=16", "model.intra_N=16", "model.intra_M=16"),
        *("data.crop_size=64", "data.clip_length=2", "data.val_clip_length=2", "data.batch_size=1"),
    ],
}


def openimages_standin(folder) -> list[str]:
    """Stand-in JPEGs for four images of the 5k subset, with its real annotations, for both splits."""
    ids = read_subset_list(OIV6 / "detection_validation_input_5k.lst")[:4]
    (folder / "img").mkdir()
    for i, image_id in enumerate(ids):
        write_image(folder / "img" / f"{image_id}.jpg", size=(160 + 8 * i, 120), seed=i)
    (folder / "subset.lst").write_text("\n".join(ids) + "\n")
    split = {
        "image_dir": folder / "img",
        "bbox_csv": OIV6 / "detection_validation_5k_bbox.csv",
        "labels_csv": OIV6 / "detection_validation_labels_5k.csv",
        "subset_list": folder / "subset.lst",
    }
    return [f"data.{s}.{k}={v}" for s in ("train", "val") for k, v in split.items()] + [
        "data.crop_size=64",
        "data.batch_size=2",
        "data.num_workers=0",
    ]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_trains_one_step(experiment, make_cfg, tmp_path):
    data = make_cfg(f"experiment={experiment}", fast=False).hydra.runtime.choices["data"]
    if data.startswith("filter_triples"):
        shrink = [*FILTER_DATA, f"data.cache_dir={tmp_path / 'cache'}"]
    elif data == "inter_frames":  # NN-VVC's inter frames, coded once into a temporary cache
        shrink = ["data.qps=[42]", "data.gop=2", "data.clips_per_sequence=1", "data.crop_size=64"]
        shrink += ["data.batch_size=2", "data.preset=ultrafast", f"data.cache_dir={tmp_path / 'cache'}"]
    elif data.startswith("openimages"):
        if not OIV6.is_dir():
            pytest.skip("../shared/data/oiv6-mpeg-vcm not present")
        shrink = ["model.N=32", "model.M=48", *openimages_standin(tmp_path)]
    else:
        shrink = MODEL_SIZES.get(experiment, CODEC_SIZES)
    metrics = train(
        make_cfg(
            f"experiment={experiment}",
            "trainer=cpu",
            "debug=fdr",
            "logger=none",
            "callbacks.anchor_comparison=null",
            *shrink,
            fast=False,
        )
    )
    assert "train/loss" in metrics and math.isfinite(metrics["train/loss"]), metrics
