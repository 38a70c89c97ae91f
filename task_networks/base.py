"""The interface every task network implements."""

from __future__ import annotations

import torch
from torch import nn


class TaskNetwork(nn.Module):
    """A frozen task network T(.) for coding-for-machines losses and evaluation.

    Its parameters never train and it never leaves eval mode, whatever mode the LightningModule that
    holds it is put into. `kind` says how its predictions are scored (vcmlab/evaluation/task_scores.py):
    "detection" (boxes, labels, scores [, masks]) or "classification" (ranked labels and scores).
    """

    kind = "detection"

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> TaskNetwork:
        return super().train(False)

    def task_loss(self, x_hat: torch.Tensor, x: torch.Tensor, targets: list[dict] | None = None) -> torch.Tensor:
        """Scalar loss of the task on decoded images x_hat (N,3,H,W in [0,1]); gradients flow to x_hat."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict]:
        """Per image: detections, dicts with boxes (K,4) xyxy pixels, labels (K,), scores (K,) [, masks];
        or, for a classifier, the top classes best first: labels (k,), scores (k,)."""
        raise NotImplementedError


class DetectorTaskNetwork(TaskNetwork):
    """A detector whose task loss is its own losses against ground truth (`loss_mode` 'detector'), the
    MSE between its features on x_hat and on x ('features', needs no labels), or 'auto': detector losses
    when the batch carries targets, features otherwise."""

    loss_mode = "auto"

    def detector_loss(self, x_hat: torch.Tensor, targets: list[dict]) -> torch.Tensor:
        raise NotImplementedError

    def feature_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def task_loss(self, x_hat, x, targets=None):
        use_detector = self.loss_mode == "detector" or (self.loss_mode == "auto" and targets is not None)
        if use_detector:
            if targets is None:
                raise ValueError("task.loss=detector needs ground-truth boxes in the batch; this datamodule has none")
            return self.detector_loss(x_hat, targets)
        return self.feature_loss(x_hat, x)
