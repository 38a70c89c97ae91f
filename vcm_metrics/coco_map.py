"""COCO-style mAP through pycocotools, from the same per-image dicts the OpenImages evaluator takes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Literal

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def evaluate_coco(
    ground_truth: Mapping[str, Mapping], detections: Mapping[str, Mapping], iou_type: Literal["bbox", "segm"] = "bbox"
) -> dict[str, float]:
    """ground_truth[image_id]: boxes (K,4) xyxy, labels (K,) ints [, masks (K,H,W)], height, width;
    detections[image_id]: boxes, labels, scores [, masks]. Returns pycocotools' 12 summary stats."""
    image_ids = {image_id: n + 1 for n, image_id in enumerate(ground_truth)}
    images, annotations, categories = [], [], set()
    for image_id, gt in ground_truth.items():
        images.append({"id": image_ids[image_id], "height": int(gt["height"]), "width": int(gt["width"])})
        for k, (box, label) in enumerate(zip(_xywh(gt["boxes"]), np.asarray(gt["labels"]))):
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_ids[image_id],
                "category_id": int(label),
                "bbox": box.tolist(),
                "area": float(box[2] * box[3]),
                "iscrowd": 0,
            }
            if iou_type == "segm":
                ann["segmentation"] = _rle(gt["masks"][k])
                ann["area"] = float(gt["masks"][k].sum())
            annotations.append(ann)
            categories.add(int(label))
    results = []
    for image_id, det in detections.items():
        if image_id not in image_ids:
            raise ValueError(f"detections for image {image_id!r}, which has no ground truth")
        for k, (box, label, score) in enumerate(
            zip(_xywh(det["boxes"]), np.asarray(det["labels"]), np.asarray(det["scores"]))
        ):
            result = {
                "image_id": image_ids[image_id],
                "category_id": int(label),
                "bbox": box.tolist(),
                "score": float(score),
            }
            if iou_type == "segm":
                result["segmentation"] = _rle(det["masks"][k])
            results.append(result)
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in sorted(categories)],
        }
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_NAMES, (float(s) for s in evaluator.stats)))
