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
