"""MTCNN (Zhang et al., 2016), the three-stage cascaded face detector, as a frozen task network.

The layer names follow the published P-, R- and O-Net state dicts (converted from the original Caffe
models, hence the transposed flattening before the dense layers), so those files load unchanged. The
detection pipeline is the usual one: an image pyramid through the fully convolutional P-Net,
candidate boxes refined by R-Net on 24x24 crops and by O-Net on 48x48 crops, NMS and box regression
after each stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms, roi_align

from task_networks.base import TaskNetwork
from task_networks.weights import load_weights


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x)))))))
        return self.conv4_2(x), self.conv4_1(x).softmax(dim=1)  # box offsets (N,4,h,w), face probability (N,2,h,w)


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 2, 1).flatten(1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.prelu4(self.dense4(_caffe_flatten(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), self.dense5_1(x).softmax(dim=1)


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.prelu4(self.conv4(self.pool3(self.prelu3(self.conv3(x)))))
        x = self.prelu5(self.dense5(_caffe_flatten(x)))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(dim=1)  # offsets, landmarks, probability


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB to the networks' input range ((255 x - 127.5) / 128)."""
    return (x * 255 - 127.5) * 0.0078125


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    size = (boxes[:, 2:4] - boxes[:, 0:2]).repeat(1, 2)
    return boxes[:, :4] + offsets * size


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box grown to the square on its longer side, same centre."""
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, 0:2]).max(dim=1, keepdim=True).values / 2
    return torch.cat([centre - half, centre + half], dim=1)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS on intersection over the smaller box (the last stage's rule: a box inside a larger
    detection of the same face goes)."""
    order, keep = scores.argsort(descending=True), []
    area = (boxes[:, 2:] - boxes[:, :2]).clamp_min(0).prod(dim=1)
    while len(order):
        i, order = order[0], order[1:]
        keep.append(i)
        top_left = torch.maximum(boxes[i, :2], boxes[order, :2])
        bottom_right = torch.minimum(boxes[i, 2:], boxes[order, 2:])
        inter = (bottom_right - top_left).clamp_min(0).prod(dim=1)
        order = order[inter / torch.minimum(area[i], area[order]).clamp_min(1e-9) <= threshold]
    return torch.stack(keep) if keep else scores.new_zeros(0, dtype=torch.int64)


class MTCNNFaces(TaskNetwork):
    """Face detector (one class, label 1). `predict` runs the full cascade; the task loss compares the
    P-Net maps of x_hat and x over `loss_scales` of the pyramid and the O-Net outputs on the faces found
    in x (48x48 crops at the same boxes of both images; bilinear sampling, so gradients reach x_hat).
    """

    def __init__(
        self,
        pnet: str | None = None,
        rnet: str | None = None,
        onet: str | None = None,
        min_face_size: int = 20,
        scale_factor: float = 0.709,
        thresholds: list[float] | None = None,
        loss_scales: int = 3,
    ):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, path, name in ((self.pnet, pnet, "P-Net"), (self.rnet, rnet, "R-Net"), (self.onet, onet, "O-Net")):
            load_weights(net, path, f"MTCNN {name}")
        self.min_face_size, self.scale_factor, self.loss_scales = min_face_size, scale_factor, loss_scales
        self.thresholds = list(thresholds) if thresholds is not None else [0.6, 0.7, 0.7]
        if len(self.thresholds) != 3 or not 0 < scale_factor < 1 or min_face_size < 12:
            raise ValueError("MTCNN needs three thresholds, 0 < scale_factor < 1 and min_face_size >= 12")
        self.freeze()

    def pyramid(self, height: int, width: int) -> list[float]:
        scale, side, scales = 12 / self.min_face_size, min(height, width) * 12 / self.min_face_size, []
        while side >= 12:
            scales.append(scale)
            scale, side = scale * self.scale_factor, side * self.scale_factor
        return scales

    def _pnet_at(self, x: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        size = [int(n * scale + 1) for n in x.shape[-2:]]
        return self.pnet(_normalise(F.interpolate(x, size=size, mode="area")))

    def _crops(self, x: torch.Tensor, boxes: torch.Tensor, side: int) -> torch.Tensor:
        return _normalise(roi_align(x, [boxes], output_size=side, spatial_scale=1.0, sampling_ratio=2, aligned=True))

    def _stage1(self, image: torch.Tensor) -> torch.Tensor:
        candidates = []
        for scale in self.pyramid(*image.shape[-2:]):
            offsets, probability = self._pnet_at(image, scale)
            score = probability[0, 1]
            ys, xs = torch.nonzero(score >= self.thresholds[0], as_tuple=True)
            if not len(ys):
                continue
            cells = torch.stack([xs, ys], dim=1).float()
            boxes = torch.cat([((2 * cells + 1) / scale).floor(), ((2 * cells + 12) / scale).floor()], dim=1)
            found = torch.cat([boxes, score[ys, xs, None], offsets[0, :, ys, xs].T], dim=1)
            candidates.append(found[nms(found[:, :4], found[:, 4], 0.5)])
        if not candidates:
            return image.new_zeros(0, 4)
        found = torch.cat(candidates)
        found = found[nms(found[:, :4], found[:, 4], 0.7)]
        return _square(_regress(found[:, :4], found[:, 5:9]))

    def _refine(
        self, image: torch.Tensor, boxes: torch.Tensor, net: nn.Module, side: int, threshold: float, last: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not len(boxes):
            return boxes, boxes.new_zeros(0)
        out = net(self._crops(image, boxes, side))
        offsets, score = out[0], out[-1][:, 1]
        keep = score > threshold
        boxes, offsets, score = boxes[keep], offsets[keep], score[keep]
        if last:  # O-Net: regress first, then suppress boxes nested in a kept one
            boxes = _regress(boxes, offsets)
            kept = _nms_min(boxes, score, 0.7)
            return boxes[kept], score[kept]
        kept = nms(boxes, score, 0.7)
        return _regress(boxes[kept], offsets[kept]), score[kept]

    @torch.no_grad()
    def detect(self, image: torch.Tensor) -> dict:
        """Faces in one image (1, 3, H, W) in [0, 1]: boxes (K, 4) xyxy pixels, scores, labels (all 1)."""
        boxes = self._stage1(image)
        boxes, _ = self._refine(image, boxes, self.rnet, 24, self.thresholds[1])
        boxes, scores = self._refine(image, _square(boxes), self.onet, 48, self.thresholds[2], last=True)
        h, w = image.shape[-2:]
        boxes = torch.stack(
            [boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1
        )
        return {
            "boxes": boxes,
            "scores": scores,
            "labels": torch.ones(len(boxes), dtype=torch.int64, device=boxes.device),
        }

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict]:
        return [self.detect(image[None]) for image in images]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The P-Net maps (box offsets, face probability) at the first `loss_scales` pyramid levels."""
        return [m for scale in self.pyramid(*x.shape[-2:])[: self.loss_scales] for m in self._pnet_at(x, scale)]

    def task_loss(self, x_hat: torch.Tensor, x: torch.Tensor, targets: list[dict] | None = None) -> torch.Tensor:
        with torch.no_grad():
            reference = self.features(x)
        terms = [F.mse_loss(a, b) for a, b in zip(self.features(x_hat), reference)]
        for i in range(len(x)):  # O-Net on the faces found in the original
            boxes = self.detect(x[i : i + 1])["boxes"]
            if len(boxes):
                with torch.no_grad():
                    reference = self.onet(self._crops(x[i : i + 1], boxes, 48))
                decoded = self.onet(self._crops(x_hat[i : i + 1], boxes, 48))
                terms += [F.mse_loss(a, b) for a, b in zip(decoded, reference)]
        if not terms:
            raise ValueError(
                f"images of {tuple(x.shape[-2:])} are smaller than MTCNN's smallest face ({self.min_face_size} px)"
            )
        return torch.stack(terms).mean()
