"""An mmdetection model behind the TaskNetwork interface (optional: mmdet needs mmcv's compiled ops).

Imported only when configured (task=mmdet). Feature-fidelity loss uses mmdet's extract_feat; the
detector's own losses go through mmdet's loss() with DetDataSample targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from task_networks.base import TaskNetwork
from task_networks.weights import load_weights

INSTALL_HINT = (
    "task=mmdet needs mmdet 3.x and mmcv 2.0/2.1 WITH compiled ops: pip install 'vcmlab[mmdet]' on a machine "
    "where an mmcv build matches your torch/CUDA (mmcv-lite is not enough). The torchvision task networks "
    "(task=faster_rcnn, task=mask_rcnn) need nothing extra."
)


def _import_mmdet():
    try:
        from mmdet.apis import init_detector
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} (import failed: {err})") from None
    return init_detector, DetDataSample, InstanceData


class MMDetDetector(TaskNetwork):
    def __init__(self, config: str, checkpoint: str | None = None, loss: str = "features"):
        super().__init__()
        init_detector, self._DetDataSample, self._InstanceData = _import_mmdet()
        self.model = init_detector(config, checkpoint=None, device="cpu")
        load_weights(self.model, checkpoint, f"mmdet model {config}")
        self.loss_mode = loss
        self.freeze()

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.model.data_preprocessor  # mean/std are in 0..255 and in the model's channel order
        x = x * 255.0
        if getattr(pre, "_channel_conversion", False):
            x = x.flip(1)
        return (x - pre.mean) / pre.std

    def feature_loss(self, x_hat, x):
        with torch.no_grad():
            reference = self.model.extract_feat(self._normalize(x))
        decoded = self.model.extract_feat(self._normalize(x_hat))
        return torch.stack([F.mse_loss(a, b) for a, b in zip(decoded, reference)]).mean()

    def _samples(self, x_hat, targets):
        samples = []
        for image, t in zip(x_hat, targets):
            sample = self._DetDataSample(
                metainfo={"img_shape": tuple(image.shape[-2:]), "pad_shape": tuple(image.shape[-2:])}
            )
            # mmdet's COCO-style models number classes from 0 without a background slot
            sample.gt_instances = self._InstanceData(
                bboxes=t["boxes"].to(image.device), labels=t["labels"].to(image.device) - 1
            )
            samples.append(sample)
        return samples

    def task_loss(self, x_hat, x, targets=None):
        if self.loss_mode == "features" or targets is None:
            return self.feature_loss(x_hat, x)
        losses = self.model.loss(self._normalize(x_hat), self._samples(x_hat, targets))
        return sum(v.sum() if torch.is_tensor(v) else sum(v) for k, v in losses.items() if "loss" in k)

    @torch.no_grad()
    def predict(self, images):
        metas = [
            self._DetDataSample(
                metainfo={
                    "img_shape": tuple(i.shape[-2:]),
                    "ori_shape": tuple(i.shape[-2:]),
                    "scale_factor": (1.0, 1.0),
                }
            )
            for i in images
        ]
        results = self.model.predict(self._normalize(images), metas)
        return [
            {"boxes": r.pred_instances.bboxes, "labels": r.pred_instances.labels + 1, "scores": r.pred_instances.scores}
            for r in results
        ]
