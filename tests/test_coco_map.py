import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vcm_metrics.coco_map import evaluate_coco


@pytest.fixture
def scene():
    rng = np.random.default_rng(3)
    gt, det = {}, {}
    for n in range(6):
        xy = rng.uniform(0, 150, (4, 2))
        boxes = np.column_stack([xy, xy + rng.uniform(20, 80, (4, 2))])
        labels = rng.integers(1, 4, 4)
        gt[f"im{n}"] = {"boxes": boxes, "labels": labels, "height": 240, "width": 240}
        noisy = boxes + rng.normal(0, 6, boxes.shape)
        extra = np.array([[10.0, 10.0, 40.0, 40.0]])
        det[f"im{n}"] = {
            "boxes": np.concatenate([noisy, extra]),
            "labels": np.concatenate([labels, [1]]),
            "scores": rng.uniform(0.1, 1.0, 5),
        }
    return gt, det


def test_matches_pycocotools_run_on_json_files(scene, tmp_path):
    gt, det = scene
    ours = evaluate_coco(gt, det)
    # the same inputs, written the way a COCO user would, evaluated by pycocotools directly
    ids = {k: i + 1 for i, k in enumerate(gt)}
    anns, res = [], []
    for k, g in gt.items():
        for b, c in zip(g["boxes"], g["labels"]):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": ids[k],
                    "category_id": int(c),
                    "iscrowd": 0,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "area": (b[2] - b[0]) * (b[3] - b[1]),
                }
            )
        for b, c, s in zip(det[k]["boxes"], det[k]["labels"], det[k]["scores"]):
            res.append(
                {"image_id": ids[k], "category_id": int(c), "score": s, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            )
    (tmp_path / "gt.json").write_text(
        json.dumps(
            {
                "images": [{"id": i, "height": 240, "width": 240} for i in ids.values()],
                "annotations": anns,
                "categories": [{"id": c} for c in (1, 2, 3)],
            },
            default=float,
        )
    )
    (tmp_path / "res.json").write_text(json.dumps(res, default=float))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        e = COCOeval(coco, coco.loadRes(str(tmp_path / "res.json")), "bbox")
        e.evaluate(), e.accumulate(), e.summarize()
    assert ours["map"] == pytest.approx(e.stats[0]) and ours["map50"] == pytest.approx(e.stats[1])
    assert 0.1 < ours["map"] < 0.9


def test_ground_truth_against_itself_and_masks(scene):
    gt, _ = scene
    perfect = {k: {**g, "scores": np.ones(len(g["labels"]))} for k, g in gt.items()}
    assert evaluate_coco(gt, perfect)["map"] == pytest.approx(1.0)
    for g in gt.values():
        g["masks"] = np.zeros((len(g["boxes"]), 240, 240), dtype=bool)
        for m, b in zip(g["masks"], g["boxes"].astype(int)):
            m[b[1] : b[3], b[0] : b[2]] = True
    perfect = {k: {**g, "scores": np.ones(len(g["labels"]))} for k, g in gt.items()}
    assert evaluate_coco(gt, perfect, "segm")["map"] == pytest.approx(1.0)
    shrunk = {k: {**d, "masks": d["masks"] & np.roll(d["masks"], 25, axis=2)} for k, d in perfect.items()}
    assert evaluate_coco(gt, shrunk, "segm")["map"] < 0.9
