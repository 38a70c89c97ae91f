"""An ImageNet classifier (torchvision's MobileNetV2, or EfficientNet-Lite0) as a frozen task network."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
import torchvision

from task_networks import efficientnet_lite
from task_networks.base import TaskNetwork
from task_networks.weights import load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# architecture: (constructor, input mean, input std, default feature stages: the ends of the stride-4,
# 8 and 16 stages of `model.features`)
ARCHITECTURES = {
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), IMAGENET_MEAN, IMAGENET_STD, [3, 6, 13]),
    "efficientnet_lite0": (
        efficientnet_lite.EfficientNetLite0,
        (efficientnet_lite.INPUT_MEAN,) * 3,
        (efficientnet_lite.INPUT_STD,) * 3,
        [3, 5, 11],
    ),
}


class ImageNetClassifier(TaskNetwork):
    """Task loss: 'kl', the KL divergence from the class distribution of x to that of x_hat (at
    `temperature`; what top-1 agreement rewards), or 'features', the MSE of the activations after the
    blocks `feature_stages` of `model.features` (normalised by the reference's mean square, so that
    every stage counts alike). Images are resized so that their shorter side is `input_size` (the
    torchvision evaluation size; null keeps them as they are), differentiably.
    `predict` gives the `top_k` classes with their probabilities."""

    kind = "classification"

    def __init__(
        self,
        checkpoint: str | None = None,
        arch: Literal["mobilenet_v2", "efficientnet_lite0"] = "mobilenet_v2",
        loss: Literal["kl", "features"] = "kl",
        temperature: float = 1.0,
        feature_stages: list[int] | None = None,
        input_size: int | None = 224,
        top_k: int = 5,
    ):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown classifier architecture {arch!r}; this build has {sorted(ARCHITECTURES)}")
        if loss not in ("kl", "features"):
            raise ValueError(f"task.loss must be kl or features, got {loss!r}")
        build, mean, std, default_stages = ARCHITECTURES[arch]
        self.model = build()
        self.loss_mode, self.temperature, self.input_size, self.top_k = loss, temperature, input_size, top_k
        self.feature_stages = list(feature_stages) if feature_stages is not None else default_stages
        if not all(0 <= s < len(self.model.features) for s in self.feature_stages):
            raise ValueError(
                f"task.feature_stages must lie in 0..{len(self.model.features) - 1}, got {self.feature_stages}"
            )
        load_weights(self.model, checkpoint, f"task network {arch}")
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None:
            scale = self.input_size / min(x.shape[-2:])
            size = [max(1, round(n * scale)) for n in x.shape[-2:]]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
        return (x - self.mean) / self.std

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._prepare(x))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], self._prepare(x)
        for i, block in enumerate(self.model.features[: max(self.feature_stages) + 1]):
            h = block(h)
            if i in self.feature_stages:
                out.append(h)
        return out

    def task_loss(self, x_hat: torch.Tensor, x: torch.Tensor, targets: list[dict] | None = None) -> torch.Tensor:
        if self.loss_mode == "features":
            with torch.no_grad():
                reference = self.features(x)
            return torch.stack(
                [F.mse_loss(a, b) / b.pow(2).mean().clamp_min(1e-8) for a, b in zip(self.features(x_hat), reference)]
            ).mean()
        with torch.no_grad():
            target = F.log_softmax(self.logits(x) / self.temperature, dim=1)
        decoded = F.log_softmax(self.logits(x_hat) / self.temperature, dim=1)
        return F.kl_div(decoded, target, log_target=True, reduction="batchmean")

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict]:
        probabilities = self.logits(images).softmax(dim=1)
        scores, labels = probabilities.topk(self.top_k, dim=1)
        return [{"labels": top, "scores": s} for top, s in zip(labels, scores)]
