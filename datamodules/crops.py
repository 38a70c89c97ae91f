"""Crop helpers shared by the datasets: random crops for training, centre crops for evaluation."""

from __future__ import annotations

import torch


def crop_window(height: int, width: int, size: int, random: bool) -> tuple[int, int]:
    """Top-left corner of a size×size window inside a height×width image."""
    if random:
        top = int(torch.randint(0, height - size + 1, ()).item())
        left = int(torch.randint(0, width - size + 1, ()).item())
        return top, left
    return (height - size) // 2, (width - size) // 2


def crop_boxes(
    boxes: torch.Tensor, top: int, left: int, size: int, min_size: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift xyxy boxes into a crop, clip them, and return (boxes, keep) with tiny leftovers dropped."""
    shifted = boxes - torch.tensor([left, top, left, top], dtype=boxes.dtype)
    clipped = shifted.clamp(min=0, max=size)
    keep = ((clipped[:, 2] - clipped[:, 0]) >= min_size) & ((clipped[:, 3] - clipped[:, 1]) >= min_size)
    return clipped[keep], keep
