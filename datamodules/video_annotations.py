"""Per-frame detection annotations of a video sequence in the COCO layout SFU-HW-Objects-v1 is
distributed in for machine-task evaluation (one JSON per sequence, as CompressAI-Vision reads it).

`images` name the frames (`file_name` ending in the frame number, e.g. `BasketballDrive_..._003.png`,
or an explicit `frame_index`; numbering from 0 or from 1 as the file says, see `first_frame`),
`annotations` give `bbox` = [x, y, width, height] in pixels and a `category_id`. Every frame comes out
as {boxes (K, 4) pixel xyxy float32, labels (K,) int64}; frames without objects have K = 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from vcmlab.errors import InputError

_TRAILING_NUMBER = re.compile(r"(\d+)$")


class AnnotationError(InputError):
    """An annotation file that does not fit its sequence."""


def frame_number(image: dict, path: Path) -> int:
    if "frame_index" in image:
        return int(image["frame_index"])
    match = _TRAILING_NUMBER.search(Path(str(image.get("file_name", ""))).stem)
    if match is None:
        raise AnnotationError(
            f"{path}: image {image.get('id')} names no frame (no frame_index, no number in file_name)"
        )
    return int(match.group(1))


def read_sequence_annotations(path: str | Path, num_frames: int, first_frame: int | None = None) -> list[dict]:
    """One target dict per frame of a sequence of `num_frames` frames. `first_frame`: the number the
    file gives the sequence's first frame (default: the smallest number it uses, 0 or 1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        coco = json.loads(path.read_text())
        images, annotations = coco["images"], coco.get("annotations", [])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise AnnotationError(f"{path} is not a COCO annotation file: {err}") from None
    numbers = {image["id"]: frame_number(image, path) for image in images}
    if not numbers:
        return [_empty() for _ in range(num_frames)]
    offset = first_frame if first_frame is not None else min(min(numbers.values()), 1)
    boxes: list[list] = [[] for _ in range(num_frames)]
    labels: list[list] = [[] for _ in range(num_frames)]
    for image_id, number in numbers.items():
        if not 0 <= number - offset < num_frames:
            raise AnnotationError(
                f"{path}: image {image_id} is frame {number}, but the sequence has frames "
                f"{offset}..{offset + num_frames - 1}"
            )
    for i, ann in enumerate(annotations):
        try:
            frame = numbers[ann["image_id"]] - offset
            x, y, w, h = (float(v) for v in ann["bbox"])
            category = int(ann["category_id"])
        except KeyError as err:
            raise AnnotationError(f"{path}: annotation {i} refers to a missing {err}") from None
        except (TypeError, ValueError) as err:
            raise AnnotationError(f"{path}: annotation {i} has a malformed bbox or category: {err}") from None
        if w <= 0 or h <= 0:
            raise AnnotationError(f"{path}: annotation {i} has an empty box {ann['bbox']}")
        boxes[frame].append([x, y, x + w, y + h])
        labels[frame].append(category)
    return [
        {"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(c, dtype=torch.int64)}
        for b, c in zip(boxes, labels)
    ]


def _empty() -> dict:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
