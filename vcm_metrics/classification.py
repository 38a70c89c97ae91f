"""Classification metrics for coding for machines: agreement with the uncompressed image's prediction
(pseudo ground truth, needs no labels) and accuracy against labels."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _ranked(prediction: Mapping) -> np.ndarray:
    """The predicted classes, best first (a classifier's `predict` gives them ranked)."""
    return np.asarray(prediction["labels"]).reshape(-1)


def top_k_agreement(
    references: Mapping[str, Mapping], predictions: Mapping[str, Mapping], k: int = 5
) -> dict[str, float]:
    """top1_agreement: share of images whose decoded top-1 class is the uncompressed image's top-1;
    top{k}_agreement: share whose uncompressed top-1 is among the decoded top-k."""
    names = sorted(predictions)
    missing = [n for n in names if n not in references]
    if missing:
        raise ValueError(f"no reference prediction for {len(missing)} images, e.g. {missing[:3]}")
    if not names:
        return {"top1_agreement": float("nan"), f"top{k}_agreement": float("nan")}
    top1 = [_ranked(predictions[n])[0] == _ranked(references[n])[0] for n in names]
    topk = [_ranked(references[n])[0] in _ranked(predictions[n])[:k] for n in names]
    return {"top1_agreement": float(np.mean(top1)), f"top{k}_agreement": float(np.mean(topk))}


def top_k_accuracy(labels: Mapping[str, int], predictions: Mapping[str, Mapping], k: int = 5) -> dict[str, float]:
    """Accuracy against ground-truth class labels, over the images that have one."""
    names = sorted(n for n in predictions if n in labels)
    if not names:
        return {}
    top1 = [_ranked(predictions[n])[0] == labels[n] for n in names]
    topk = [labels[n] in _ranked(predictions[n])[:k] for n in names]
    return {"top1_accuracy": float(np.mean(top1)), f"top{k}_accuracy": float(np.mean(topk))}
