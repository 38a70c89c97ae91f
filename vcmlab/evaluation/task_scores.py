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

import numpy as np
import torch

from task_networks import TaskNetwork
from vcm_metrics import evaluate_coco, evaluate_openimages, top_k_accuracy, top_k_agreement
from vcmlab.errors import ConfigError

METRIC_REFERENCES = ("labels", "uncompressed")


def to_numpy(prediction: dict) -> dict:
    out = {k: v.detach().cpu().numpy() for k, v in prediction.items() if k in ("boxes", "labels", "scores")}
    if "masks" in prediction:  # torchvision: (K, 1, H, W) probabilities
        out["masks"] = prediction["masks"].detach().cpu().numpy()[:, 0] > 0.5
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
    """Collects a task network's predictions over one rate point (`begin`, then `observe` per image) and
    scores them (`scores`). Predictions on the uncompressed images are made once for all rate points."""

    def __init__(self, task: TaskNetwork, metric_reference: str = "labels", pseudo_gt_score: float = 0.5):
        if metric_reference not in METRIC_REFERENCES:
            raise ConfigError(f"metric_reference must be one of {METRIC_REFERENCES}, got {metric_reference!r}")
        if not 0 <= pseudo_gt_score <= 1:
            raise ConfigError(f"pseudo_gt_score must lie in [0, 1], got {pseudo_gt_score}")
        self.task, self.reference, self.pseudo_gt_score = task, metric_reference, pseudo_gt_score
        self.kind = getattr(task, "kind", "detection")
        self._uncompressed: dict[str, dict] = {}
        self.begin()

    def begin(self) -> None:
        self.predictions: dict[str, dict] = {}
        self._ground_truth: dict[str, dict] = {}
        self._labels: dict[str, int] = {}
        self._sizes: dict[str, tuple[int, int]] = {}

    def observe(self, name: str, x: torch.Tensor, x_hat: torch.Tensor, item: dict) -> None:
        self.predictions[name] = to_numpy(self.task.predict(x_hat[None])[0])
        self._sizes[name] = tuple(x.shape[-2:])
        if (self.reference == "uncompressed" or self.kind == "classification") and name not in self._uncompressed:
            self._uncompressed[name] = to_numpy(self.task.predict(x[None])[0])
        if "targets" in item:
            h, w = x.shape[-2:]
            t = item["targets"]
            self._ground_truth[name] = {
                k: v.numpy() for k, v in t.items() if k in ("boxes", "labels", "is_group_of", "image_labels", "masks")
            }
            self._ground_truth[name] |= {"height": h, "width": w}
        if "label" in item:
            self._labels[name] = int(item["label"])

    def scores(self, names=None) -> dict:
        """Scores over every observed image, or over `names` only (one video sequence's frames)."""
        predictions = self.predictions if names is None else {n: self.predictions[n] for n in names}
        if self.kind == "classification":
            return {
                "metric_reference": "uncompressed",
                **top_k_agreement(self._uncompressed, predictions),
                **top_k_accuracy({n: v for n, v in self._labels.items() if n in predictions}, predictions),
            }
        if self.reference == "uncompressed":
            truth = {
                n: pseudo_ground_truth(self._uncompressed[n], p, self.pseudo_gt_score, *self._sizes[n])
                for n, p in predictions.items()
            }
            return {
                "metric_reference": "uncompressed",
                "pseudo_gt_score": self.pseudo_gt_score,
                **detection_metrics(truth, predictions),
            }
        truth = {n: g for n, g in self._ground_truth.items() if n in predictions}
        if not truth:
            return {}  # an unlabelled set: predictions are written, nothing to score them against
        return {"metric_reference": "labels", **detection_metrics(truth, predictions)}
