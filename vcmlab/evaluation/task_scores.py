"""Machine-task scores of a rate point: the task network's predictions on the decoded images against a
reference, either the data set's annotations (`metric_reference=labels`) or the network's own
predictions on the uncompressed images (`metric_reference=uncompressed`: pseudo ground truth, how
coding-for-machines results are reported on unlabelled sets).

Detectors: OpenImages-protocol and COCO mAP. Against the uncompressed image, its detections scoring at
least `pseudo_gt_score` are the ground truth, and every class counts (an image's evaluatable classes
are those of its reference and of the decoded detections, so a class the original does not show is
a false positive). The uncompressed images thus score exactly 1.0 against themselves.
Classifiers: top-1/top-5 agreement with the uncompressed image's prediction, always, and accuracy
where the data set has labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from task_networks import TaskNetwork
from vcm_metrics import evaluate_coco, evaluate_openimages, top_k_accuracy, top_k_agreement
from vcmlab.errors import ConfigError
from vcmlab.evaluation.records import pixels_sha256, write_atomic

METRIC_REFERENCES = ("labels", "uncompressed")


def to_numpy(prediction: dict) -> dict:
    out = {k: v.detach().cpu().numpy() for k, v in prediction.items() if k in ("boxes", "labels", "scores")}
    if "masks" in prediction:  # torchvision: (K, 1, H, W) probabilities
        out["masks"] = prediction["masks"].detach().cpu().numpy()[:, 0] > 0.5
    return out


ARRAY_TYPES = {"boxes": float, "scores": float, "labels": np.int64, "image_labels": np.int64, "is_group_of": bool}


def to_json(arrays: dict) -> dict:
    """Predictions or annotations as JSON values: arrays as lists, masks as COCO run-length codes."""
    out = {k: np.asarray(v).tolist() for k, v in arrays.items() if k in ARRAY_TYPES}
    if "masks" in arrays:
        masks = np.asarray(arrays["masks"], dtype=bool)
        out["mask_size"] = list(masks.shape[1:])
        out["masks"] = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode() for m in masks]
    return out


def from_json(values: dict) -> dict:
    """The arrays `to_json` wrote: every figure is computed from these, whether the record was just
    made or read back from a file, so both give the same scores."""
    out = {k: np.asarray(v, dtype=ARRAY_TYPES[k]) for k, v in values.items() if k in ARRAY_TYPES}
    if "boxes" in out:
        out["boxes"] = out["boxes"].reshape(-1, 4)
    if "masks" in values:
        h, w = values["mask_size"]
        decoded = [mask_utils.decode({"size": [h, w], "counts": c.encode()}).astype(bool) for c in values["masks"]]
        out["masks"] = np.stack(decoded) if decoded else np.zeros((0, h, w), dtype=bool)
    return out


def detection_metrics(ground_truth: dict, predictions: dict) -> dict[str, float]:
    """OpenImages-protocol mAP@0.5 (boxes, and masks when both sides have them) and COCO mAP."""
    metrics = {"map": evaluate_openimages(ground_truth, predictions)["map"]}
    coco = evaluate_coco(ground_truth, predictions)
    metrics |= {"coco_map": coco["map"], "coco_map50": coco["map50"]}
    if all("masks" in g for g in ground_truth.values()) and all("masks" in p for p in predictions.values()):
        metrics["map_segm"] = evaluate_openimages(ground_truth, predictions, use_masks=True)["map"]
        metrics["coco_map_segm"] = evaluate_coco(ground_truth, predictions, "segm")["map"]
    return metrics


def pseudo_ground_truth(reference: dict, decoded: dict, score_threshold: float, height: int, width: int) -> dict:
    """The reference detections scoring at least `score_threshold`, as ground truth for `decoded`."""
    keep = np.asarray(reference["scores"]) >= score_threshold
    labels = np.asarray(reference["labels"])[keep]
    truth = {
        "boxes": np.asarray(reference["boxes"], dtype=float).reshape(-1, 4)[keep],
        "labels": labels,
        "is_group_of": np.zeros(len(labels), dtype=bool),
        "image_labels": np.union1d(labels, np.asarray(decoded["labels"])),
        "height": height,
        "width": width,
    }
    if "masks" in reference:
        truth["masks"] = reference["masks"][keep]
    return truth


class TaskScorer:
    """A task network's predictions per image, as task records (`observe`: JSON values, what an image's
    record stores), and their scores (`scores`, or `score_task_records` on records read back).
    Predictions on an uncompressed image are made once for all rate points: kept in memory and, with
    `cache_dir`, in a file there that other processes of the same run read."""

    def __init__(
        self,
        task: TaskNetwork,
        metric_reference: str = "labels",
        pseudo_gt_score: float = 0.5,
        cache_dir: Path | None = None,
    ):
        if metric_reference not in METRIC_REFERENCES:
            raise ConfigError(f"metric_reference must be one of {METRIC_REFERENCES}, got {metric_reference!r}")
        if not 0 <= pseudo_gt_score <= 1:
            raise ConfigError(f"pseudo_gt_score must lie in [0, 1], got {pseudo_gt_score}")
        self.task, self.cache_dir = task, cache_dir
        self.scoring = {
            "kind": getattr(task, "kind", "detection"),
            "metric_reference": metric_reference,
            "pseudo_gt_score": pseudo_gt_score,
        }
        self._uncompressed: dict[str, dict] = {}
        self.begin()

    def begin(self) -> None:
        self.records: dict[str, dict] = {}

    @property
    def predictions(self) -> dict[str, dict]:
        return {n: from_json(r["prediction"]) for n, r in self.records.items()}

    def observe(self, name: str, x: torch.Tensor, x_hat: torch.Tensor, item: dict) -> dict:
        """The task record of one decoded image (kept for `scores`)."""
        record = {"size": list(x.shape[-2:]), "prediction": to_json(to_numpy(self.task.predict(x_hat[None])[0]))}
        if self.scoring["metric_reference"] == "uncompressed" or self.scoring["kind"] == "classification":
            record["uncompressed"] = self._uncompressed_prediction(name, x)
        if "targets" in item:
            record["truth"] = to_json({k: v.numpy() for k, v in item["targets"].items()})
        if "label" in item:
            record["label"] = int(item["label"])
        self.records[name] = record
        return record

    def _uncompressed_prediction(self, name: str, x: torch.Tensor) -> dict:
        if name in self._uncompressed:
            return self._uncompressed[name]
        path = self.cache_dir / f"{name}.json" if self.cache_dir is not None else None
        source = pixels_sha256(x)
        try:
            cached = json.loads(path.read_text()) if path is not None else None
        except (OSError, ValueError):  # not made yet, or damaged: made again
            cached = None
        # made on this very image (not an earlier one of the same name)?
        prediction = (
            cached.get("prediction") if isinstance(cached, dict) and cached.get("source_sha256") == source else None
        )
        if prediction is None:
            prediction = to_json(to_numpy(self.task.predict(x[None])[0]))
            if path is not None:
                write_atomic(path, json.dumps({"source_sha256": source, "prediction": prediction}).encode())
        self._uncompressed[name] = prediction
        return prediction

    def scores(self, names=None) -> dict:
        """Scores over every observed image, or over `names` only (one video sequence's frames)."""
        records = self.records if names is None else {n: self.records[n] for n in names}
        return score_task_records(self.scoring, records)


def score_task_records(scoring: dict, records: dict[str, dict]) -> dict:
    """The scores of task records (image name -> record) under `scoring` (TaskScorer.scoring)."""
    predictions = {n: from_json(r["prediction"]) for n, r in records.items()}
    uncompressed = {n: from_json(r["uncompressed"]) for n, r in records.items() if "uncompressed" in r}
    if scoring["kind"] == "classification":
        labels = {n: r["label"] for n, r in records.items() if "label" in r}
        return {
            "metric_reference": "uncompressed",
            **top_k_agreement(uncompressed, predictions),
            **top_k_accuracy(labels, predictions),
        }
    if scoring["metric_reference"] == "uncompressed":
        truth = {
            n: pseudo_ground_truth(uncompressed[n], p, scoring["pseudo_gt_score"], *records[n]["size"])
            for n, p in predictions.items()
        }
        return {
            "metric_reference": "uncompressed",
            "pseudo_gt_score": scoring["pseudo_gt_score"],
            **detection_metrics(truth, predictions),
        }
    truth = {
        n: from_json(r["truth"]) | dict(zip(("height", "width"), r["size"])) for n, r in records.items() if "truth" in r
    }
    if not truth:
        return {}  # an unlabelled set: predictions are written, nothing to score them against
    return {"metric_reference": "labels", **detection_metrics(truth, predictions)}
