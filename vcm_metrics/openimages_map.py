"""mAP under the OpenImages Challenge protocol (as used by MPEG VCM on OpenImages V6), for boxes or
instance masks.

It follows the reference, the TF Object Detection API's OpenImagesDetectionChallengeEvaluator (which
MPEG VCM and CompressAI-Vision results come from), case by case:
0. detections with zero or negative width or height are dropped before matching (the reference's
   _remove_invalid_boxes), not counted as false positives;
Per image and class, detections are taken by descending score (the reference's order, ties included):
1. each is matched to the non-group-of ground truth of highest IoU; if that IoU >= threshold and the
   object is not matched yet it is a true positive, else a false positive;
2. a detection left unmatched whose intersection-over-its-own-area (IoA) with a group-of box of its
   class is >= threshold is not a false positive: all detections inside one group-of box together
   count as ONE true positive, with their highest score, and are otherwise ignored. Between nested
   group-of boxes (equal IoA) the reference takes the first in annotation order (tie_break="first");
   tie_break="iou" takes the one of larger IoU instead, which does not depend on the CSV's row order
   but gives different numbers than published ones (~1e-2 AP on the segmentation 5k subset).
Detections of classes that are neither verified image-level labels (present or absent) nor among the
image's box labels are ignored: the image was never checked for them. Every ground-truth box (group-of
boxes once each) counts towards recall. AP is the area under the precision envelope (VOC 2012 style);
mAP averages AP over classes that have ground truth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from vcm_metrics.overlaps import box_ioa, box_iou, mask_ioa, mask_iou


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: float) -> float:
    """Area under the interpolated precision-recall curve; tp may hold fractional weights."""
    if num_gt <= 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(float)
    cum_tp, cum_fp = np.cumsum(tp), np.cumsum(1.0 - tp)
    precision = cum_tp / np.maximum(cum_tp + cum_fp, np.finfo(float).eps)
    recall = cum_tp / num_gt
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changed = np.nonzero(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[changed] - recall[changed - 1]) * precision[changed]))


def _match_class(det_boxes, det_scores, gt_boxes, gt_group_of, iou_threshold, overlap_fns, tie_break="first"):
    """Scores and TP flags contributed by one class in one image (see the module docstring)."""
    iou_fn, ioa_fn = overlap_fns
    order = np.argsort(det_scores)[::-1]  # as the reference sorts (np_box_list_ops.sort_by_field)
    det_boxes, det_scores = det_boxes[order], det_scores[order]
    n = len(det_scores)
    tp = np.zeros(n, dtype=bool)
    in_group = np.zeros(n, dtype=bool)
    single, group = gt_boxes[~gt_group_of], gt_boxes[gt_group_of]
    if len(single):
        iou = iou_fn(det_boxes, single)
        best = iou.argmax(axis=1)
        taken = np.zeros(len(single), dtype=bool)
        for i in np.nonzero(iou[np.arange(n), best] >= iou_threshold)[0]:
            if not taken[best[i]]:
                taken[best[i]] = tp[i] = True
    group_scores = np.zeros(0)
    if len(group):
        ioa = ioa_fn(det_boxes, group)
        if tie_break == "first":  # a detection inside nested group-of boxes has IoA 1 with each
            best = ioa.argmax(axis=1)
        else:
            best = np.where(ioa >= ioa.max(axis=1, keepdims=True), iou_fn(det_boxes, group), -1.0).argmax(axis=1)
        in_group = ~tp & (ioa[np.arange(n), best] >= iou_threshold)
        best_score = np.zeros(len(group))
        np.maximum.at(best_score, best[in_group], det_scores[in_group])
        group_scores = best_score[best_score > 0]  # the reference keeps group-of boxes matched with a score > 0
    keep = ~in_group
    scores = np.concatenate([det_scores[keep], group_scores])
    flags = np.concatenate([tp[keep], np.ones(len(group_scores), dtype=bool)])
    return scores, flags


def evaluate_openimages(
    ground_truth: Mapping[str, Mapping],
    detections: Mapping[str, Mapping],
    iou_threshold: float = 0.5,
    use_masks: bool = False,
    tie_break: str = "first",
) -> dict:
    """mAP@IoU`iou_threshold` under the OpenImages protocol.

    ground_truth[image_id]: boxes (K, 4) xyxy, labels (K,), is_group_of (K,), image_labels (verified
    labels, present or absent; optional), masks (K, H, W) when use_masks.
    detections[image_id]: boxes (D, 4), labels (D,), scores (D,), masks (D, H, W) when use_masks.
    Labels may be ints or strings. Returns {"map", "ap_per_class", "num_gt_per_class"}.
    """
    if tie_break not in ("first", "iou"):
        raise ValueError(f"tie_break must be 'first' (the reference) or 'iou', got {tie_break!r}")
    overlap_fns = (mask_iou, mask_ioa) if use_masks else (box_iou, box_ioa)
    key = "masks" if use_masks else "boxes"
    scores_per_class: dict = defaultdict(list)
    tp_per_class: dict = defaultdict(list)
    num_gt: dict = defaultdict(float)
    unknown = set(detections) - set(ground_truth)
    if unknown:
        raise ValueError(f"detections for {len(unknown)} images without ground truth, e.g. {sorted(unknown)[:3]}")
    for image_id, gt in ground_truth.items():
        gt_labels = np.asarray(gt["labels"])
        gt_shapes = np.asarray(gt[key], dtype=float if key == "boxes" else bool)
        group_of = np.asarray(gt.get("is_group_of", np.zeros(len(gt_labels), dtype=bool)), dtype=bool)
        for label in gt_labels:
            num_gt[label.item() if hasattr(label, "item") else label] += 1.0
        det = detections.get(image_id)
        if det is None or len(det["scores"]) == 0:
            continue
        det_labels, det_scores = np.asarray(det["labels"]), np.asarray(det["scores"], dtype=float)
        det_shapes = np.asarray(det[key], dtype=float if key == "boxes" else bool)
        if "boxes" in det and len(det["boxes"]):  # the reference drops zero/negative-area boxes first
            boxes = np.asarray(det["boxes"], dtype=float).reshape(-1, 4)
            valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
            det_labels, det_scores, det_shapes = det_labels[valid], det_scores[valid], det_shapes[valid]
        evaluatable = np.union1d(np.asarray(list(gt.get("image_labels", [])), dtype=gt_labels.dtype), gt_labels)
        for label in np.unique(det_labels[np.isin(det_labels, evaluatable)]):
            d, g = det_labels == label, gt_labels == label
            s, t = _match_class(
                det_shapes[d], det_scores[d], gt_shapes[g], group_of[g], iou_threshold, overlap_fns, tie_break
            )
            label = label.item() if hasattr(label, "item") else label
            scores_per_class[label].append(s)
            tp_per_class[label].append(t)
    ap = {}
    for label in sorted(num_gt, key=str):
        scores = np.concatenate(scores_per_class[label]) if scores_per_class[label] else np.zeros(0)
        tps = np.concatenate(tp_per_class[label]) if tp_per_class[label] else np.zeros(0, dtype=bool)
        ap[label] = average_precision(scores, tps, num_gt[label])
    values = [v for v in ap.values() if not np.isnan(v)]
    return {
        "map": float(np.mean(values)) if values else float("nan"),
        "ap_per_class": ap,
        "num_gt_per_class": dict(num_gt),
    }
