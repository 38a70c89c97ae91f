"""torchvision Faster R-CNN / Mask R-CNN as frozen task networks.

The detectors are built with frozen batch norm, so that the training-mode forward torchvision needs to
return its losses changes no statistics. Module names match torchvision's own builders, so checkpoints
saved from `torchvision.models.detection.fasterrcnn_resnet50_fpn(...)` etc. load unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from task_networks.base import DetectorTaskNetwork
from task_networks.weights import load_weights

ARCHITECTURES = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn")
LossMode = Literal["auto", "detector", "features"]


def build_detector(arch: str, num_classes: int, **detector_kwargs) -> FasterRCNN:
    if arch in ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn"):
        backbone = resnet_fpn_backbone(
            backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=0
        )
        cls = MaskRCNN if arch.startswith("mask") else FasterRCNN
        return cls(backbone, num_classes=num_classes, **detector_kwargs)
    if arch == "fasterrcnn_mobilenet_v3_large_fpn":
        backbone = mobilenet_backbone(
            backbone_name="mobilenet_v3_large", weights=None, fpn=True, norm_layer=FrozenBatchNorm2d, trainable_layers=0
        )
        anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
        detector_kwargs.setdefault("rpn_score_thresh", 0.05)
        return FasterRCNN(backbone, num_classes=num_classes, rpn_anchor_generator=anchors, **detector_kwargs)
    raise ValueError(f"unknown detector architecture {arch!r}; choose one of {ARCHITECTURES}")


class TorchvisionDetector(DetectorTaskNetwork):
    """Task loss = the detector's own losses against ground truth ('detector'), the MSE between
    backbone/FPN features of x_hat and x ('features', needs no labels), or 'auto': detector losses when
    the batch carries targets, features otherwise."""

    def __init__(
        self,
        arch: str = "fasterrcnn_resnet50_fpn",
        num_classes: int = 91,
        checkpoint: str | None = None,
        loss: LossMode = "auto",
        feature_levels: list[str] | None = None,
        detector_kwargs: dict | None = None,
    ):
        super().__init__()
        if loss not in ("auto", "detector", "features"):
            raise ValueError(f"task loss must be auto, detector or features, got {loss!r}")
        self.arch = arch
        self.loss_mode = loss
        self.feature_levels = feature_levels
        self.detector = build_detector(arch, num_classes, **(detector_kwargs or {}))
        load_weights(self.detector, checkpoint, f"task network {arch}")
        self.freeze()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        normalized = self.detector.transform.normalize(x)  # broadcasts over the batch
        feats = self.detector.backbone(normalized)
        levels = self.feature_levels or list(feats)
        return [feats[level] for level in levels]

    def feature_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            reference = self.features(x)
        decoded = self.features(x_hat)
        return torch.stack([F.mse_loss(a, b) for a, b in zip(decoded, reference)]).mean()

    def detector_loss(self, x_hat: torch.Tensor, targets: list[dict]) -> torch.Tensor:
        keys = ("boxes", "labels", "masks")
        clean = [{k: t[k].to(x_hat.device) for k in keys if k in t} for t in targets]
        if isinstance(self.detector, MaskRCNN) and not all("masks" in t for t in clean):
            raise ValueError("Mask R-CNN's own loss needs instance masks in the targets; use task.loss=features")
        self.detector.train()  # torchvision returns losses only in training mode; BN is frozen
        try:
            losses = self.detector(list(x_hat), clean)
        finally:
            self.detector.eval()
        return sum(losses.values())

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict]:
        self.detector.eval()
        return self.detector(list(images))
