"""vcm-eval's task-metric plumbing on the real OpenImages annotations with stand-in images."""

import json

import numpy as np
import pytest
import torch

from conventional_codecs import PillowCodec
from datamodules.openimages import OpenImagesDataset, read_subset_list
from task_networks import TaskNetwork
from tests.conftest import SHARED_DATA
from tests.helpers import write_image
from vcmlab.evaluation import RatePoint, TaskScorer, evaluate_rate_point

OIV6 = SHARED_DATA / "oiv6-mpeg-vcm"


class SizeOracle(TaskNetwork):
    """'Detects' the ground truth of the image with this size (stand-in sizes are unique), keeping
    every `keep`-th box: a detector of known quality."""

    def __init__(self, truth: dict, keep: int = 1):
        super().__init__()
        self.truth, self.keep = truth, keep

    def predict(self, images):
        t = self.truth[tuple(images.shape[-2:])]
        n = len(t["labels"])
        return [
            {
                "boxes": t["boxes"][:: self.keep],
                "labels": t["labels"][:: self.keep],
                "scores": torch.linspace(1, 0.5, n)[:: self.keep],
            }
        ]


@pytest.mark.skipif(not OIV6.is_dir(), reason="../shared/data/oiv6-mpeg-vcm not present")
def test_task_metrics_through_a_lossy_codec(tmp_path):
    ids = read_subset_list(OIV6 / "detection_validation_input_5k.lst")[:10]
    (tmp_path / "img").mkdir()
    for i, image_id in enumerate(ids):
        write_image(tmp_path / "img" / f"{image_id}.jpg", size=(160 + 8 * i, 120 + 4 * i), seed=i)
    dataset = OpenImagesDataset(
        str(tmp_path / "img"),
        str(OIV6 / "detection_validation_5k_bbox.csv"),
        str(OIV6 / "detection_validation_labels_5k.csv"),
    )
    items = [dataset[i] for i in range(len(dataset))]
    truth = {tuple(it["image"].shape[-2:]): it["targets"] for it in items}
    assert sum(len(it["targets"]["boxes"]) for it in items) > 10

    codec = PillowCodec("jpeg", 50)
    perfect = evaluate_rate_point(
        RatePoint("jpeg_q50", codec, codec, "jpeg"), dataset, tmp_path / "a", TaskScorer(SizeOracle(truth))
    )
    assert perfect["map"] == pytest.approx(1.0) and perfect["coco_map"] == pytest.approx(1.0)
    half = evaluate_rate_point(
        RatePoint("jpeg_q50", codec, codec, "jpeg"), dataset, tmp_path / "b", TaskScorer(SizeOracle(truth, keep=2))
    )
    assert half["map"] < 0.9 and half["bpp"] == perfect["bpp"]
    predictions = json.loads((tmp_path / "a" / "predictions.json").read_text())
    assert set(predictions) == set(ids) and np.array(predictions[ids[0]]["boxes"]).shape[1] == 4
