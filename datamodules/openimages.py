"""OpenImages V6 data: an image folder, a *-bbox.csv (detection) or a *-object-segmentation.csv with
its mask PNGs (instance segmentation), image-level labels, and an optional subset list.

Boxes in the CSVs are normalised; items carry them in pixel xyxy for the image as loaded, and masks
resized to it. Group-of flags and verified image-level labels (positive / verified absent) are kept,
because the OpenImages evaluation protocol needs them.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from datamodules.base import ImageDataModule, check_count
from datamodules.crops import crop_boxes, crop_window
from datamodules.image_datasets import BadImagePolicy, SkippingDataset, checked_load
from datamodules.image_io import ImageReadError
from vcmlab.errors import ConfigError, InputError

log = logging.getLogger(__name__)


def normalize_label(name: str) -> str:
    """OpenImages/MPEG-VCM write 'traffic_light' where torchvision's COCO list has 'traffic light'."""
    return name.strip().lower().replace(" ", "_")


def coco_category_names() -> list[str]:
    """torchvision's 91-entry COCO category list (index = detector label id); no download involved."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    return list(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])


@dataclass
class ImageAnnotations:
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # normalised xyxy
    labels: list[str] = field(default_factory=list)
    group_of: list[bool] = field(default_factory=list)
    positive_labels: set[str] = field(default_factory=set)
    negative_labels: set[str] = field(default_factory=set)
    mask_paths: list[str] = field(default_factory=list)  # segmentation only, one per box


InvalidBoxPolicy = Literal["error", "drop"]


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line number, row) pairs; a clear error for a missing file, missing columns or a ragged row."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path} lacks the column(s) {missing}; expected the OpenImages layout {list(required)}")
        rows = []
        for row in reader:
            if None in row or any(row[c] is None for c in required):  # more or fewer fields than the header
                raise InputError(
                    f"{path}:{reader.line_num}: the row's number of fields differs from the header's "
                    f"({len(reader.fieldnames)})"
                )
            rows.append((reader.line_num, row))
        return rows


def _number(row: dict, column: str, path: Path, line: int) -> float:
    try:
        value = float(row[column])
    except ValueError:
        raise InputError(f"{path}:{line}: {column}={row[column]!r} is not a number") from None
    if value != value:  # NaN
        raise InputError(f"{path}:{line}: {column} is NaN")
    return value


def _box(
    row: dict, columns: tuple[str, str, str, str], path: Path, line: int
) -> tuple[float, float, float, float] | str:
    """Normalised xyxy from (XMin, YMin, XMax, YMax) columns, or why the box is invalid."""
    x0, y0, x1, y1 = (_number(row, c, path, line) for c in columns)
    if not (0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1):
        box = dict(zip(columns, (x0, y0, x1, y1)))
        return f"{path}:{line}: box {box} of image {row['ImageID']} is not inside the unit square with min <= max"
    return x0, y0, x1, y1


def read_annotations(
    bbox_csv: str | Path | None,
    labels_csv: str | Path | None = None,
    segmentation_csv: str | Path | None = None,
    invalid_boxes: InvalidBoxPolicy = "error",
) -> dict[str, ImageAnnotations]:
    """Annotations per ImageID from OpenImages CSVs (full V6 files or the MPEG-VCM subsets): boxes
    from bbox_csv, or boxes with masks from segmentation_csv (exactly one of the two). A box outside
    the unit square or with min > max is an error, or with invalid_boxes='drop' left out with a warning."""
    if (bbox_csv is None) == (segmentation_csv is None):
        raise ConfigError("give bbox_csv (detection) or segmentation_csv (instance segmentation), not both or neither")
    if invalid_boxes not in ("error", "drop"):
        raise ConfigError(f"invalid_boxes must be 'error' or 'drop', got {invalid_boxes!r}")
    per_image: dict[str, ImageAnnotations] = defaultdict(ImageAnnotations)
    dropped: list[str] = []
    if bbox_csv is not None:
        path, columns = Path(bbox_csv), ("XMin", "YMin", "XMax", "YMax")
        rows = _read_csv(path, ("ImageID", "LabelName", *columns))
    else:
        path, columns = Path(segmentation_csv), ("BoxXMin", "BoxYMin", "BoxXMax", "BoxYMax")
        rows = _read_csv(path, ("MaskPath", "ImageID", "LabelName", *columns))
    for line, row in rows:
        box = _box(row, columns, path, line)
        if isinstance(box, str):
            if invalid_boxes == "error":
                raise InputError(f"{box}; fix the file or set data.invalid_boxes=drop")
            dropped.append(box)
            continue
        ann = per_image[row["ImageID"]]
        ann.boxes.append(box)
        ann.labels.append(row["LabelName"])
        if segmentation_csv is None:
            ann.group_of.append(row.get("IsGroupOf", "0") == "1")
        else:
            ann.group_of.append(False)  # segmentation instances are single objects
            ann.mask_paths.append(row["MaskPath"])
    if dropped:
        message = f"dropped {len(dropped)} invalid boxes of {path}, e.g. {dropped[0]}"
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    if labels_csv is not None:
        labels_path = Path(labels_csv)
        for line, row in _read_csv(labels_path, ("ImageID", "LabelName", "Confidence")):
            ann = per_image[row["ImageID"]]
            (ann.positive_labels if _number(row, "Confidence", labels_path, line) > 0 else ann.negative_labels).add(
                row["LabelName"]
            )
    return dict(per_image)


def read_subset_list(path: str | Path) -> list[str]:
    """Image ids of a subset list such as detection_validation_input_5k.lst (one file name a line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"subset list not found: {path}")
    return [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]


class OpenImagesDataset(SkippingDataset):
    """Items: image (3,H,W), targets {boxes (K,4) pixel xyxy, labels (K,), is_group_of (K,),
    image_labels (K',): ids of the verified image-level labels, present or absent}, name."""

    def __init__(
        self,
        image_dir: str,
        bbox_csv: str | None = None,
        labels_csv: str | None = None,
        subset_list: str | None = None,
        segmentation_csv: str | None = None,
        mask_dir: str | None = None,
        classes: str | list[str] = "coco",
        crop_size: int | None = None,
        train: bool = False,
        image_ext: str = ".jpg",
        unknown_labels: Literal["error", "drop"] = "error",
        on_bad_image: BadImagePolicy = "error",
        invalid_boxes: InvalidBoxPolicy = "error",
    ):
        super().__init__(on_bad_image)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"OpenImages image folder not found: {self.image_dir}")
        if segmentation_csv is not None and (mask_dir is None or not Path(mask_dir).is_dir()):
            raise FileNotFoundError(f"segmentation_csv needs mask_dir, the folder of its mask PNGs (got {mask_dir})")
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        self.annotations = read_annotations(bbox_csv, labels_csv, segmentation_csv, invalid_boxes)
        if subset_list is not None:
            self.image_ids = read_subset_list(subset_list)
        else:
            self.image_ids = sorted(p.stem for p in self.image_dir.glob(f"*{image_ext}"))
        if not self.image_ids:
            raise FileNotFoundError(f"no {image_ext} images found in {self.image_dir}")
        self.image_ext = image_ext
        self.paths = [self.image_dir / f"{i}{image_ext}" for i in self.image_ids]  # for codec=lossless
        self.crop_size = crop_size
        self.train = train
        self.class_names = self._class_names(classes)
        self.label_ids = {
            normalize_label(n): i for i, n in enumerate(self.class_names) if n not in ("__background__", "N/A")
        }
        unknown = {
            label
            for ann in self.annotations.values()
            for label in ann.labels
            if normalize_label(label) not in self.label_ids
        }
        if unknown and unknown_labels == "error":
            raise ValueError(
                f"{len(unknown)} labels such as {sorted(unknown)[:5]} are not among the configured classes "
                f"({classes!r}); "
                "set unknown_labels=drop to train on the known classes only"
            )
        self.unknown = unknown

    def _class_names(self, classes: str | list[str]) -> list[str]:
        if classes == "coco":
            return coco_category_names()
        if classes == "auto":  # 0 stays background, as torchvision detectors expect
            return ["__background__", *sorted({label for a in self.annotations.values() for label in a.labels})]
        return ["__background__", *classes]

    def __len__(self) -> int:
        return len(self.image_ids)

    def load_item(self, index: int) -> dict:
        image_id = self.image_ids[index]
        image = checked_load(
            self.image_dir / f"{image_id}{self.image_ext}",
            self.crop_size,
            "data.crop_size" if self.train else "data.val_crop_size",
        )
        ann = self.annotations.get(image_id, ImageAnnotations())
        h, w = image.shape[-2:]
        known = [i for i, name in enumerate(ann.labels) if name not in self.unknown]
        boxes = torch.tensor([ann.boxes[i] for i in known], dtype=torch.float32).reshape(-1, 4) * torch.tensor(
            [w, h, w, h]
        )
        labels = torch.tensor([self.label_ids[normalize_label(ann.labels[i])] for i in known], dtype=torch.int64)
        group_of = torch.tensor([ann.group_of[i] for i in known], dtype=torch.bool)
        masks = self._load_masks([ann.mask_paths[i] for i in known], h, w) if ann.mask_paths else None
        if self.crop_size is not None:
            top, left = crop_window(h, w, self.crop_size, random=self.train)
            image = image[:, top : top + self.crop_size, left : left + self.crop_size]
            boxes, keep = crop_boxes(boxes, top, left, self.crop_size)
            labels, group_of = labels[keep], group_of[keep]
            if masks is not None:
                masks = masks[keep][:, top : top + self.crop_size, left : left + self.crop_size]
        targets = {
            "boxes": boxes,
            "labels": labels,
            "is_group_of": group_of,
            "image_labels": self._label_tensor(ann.positive_labels | ann.negative_labels),
        }
        if masks is not None:
            targets["masks"] = masks
        return {"image": image, "targets": targets, "name": image_id}

    def _label_tensor(self, names: set[str]) -> torch.Tensor:
        ids = sorted({self.label_ids[n] for n in map(normalize_label, names) if n in self.label_ids})
        return torch.tensor(ids, dtype=torch.int64)

    def _load_masks(self, names: list[str], height: int, width: int) -> torch.Tensor:
        """Binary instance masks (K, H, W) uint8; OpenImages stores them at their own resolution."""
        masks = torch.zeros(len(names), height, width, dtype=torch.uint8)
        for k, name in enumerate(names):
            path = self.mask_dir / name
            if not path.is_file():
                raise FileNotFoundError(f"instance mask not found: {path}")
            try:
                with Image.open(path) as mask:
                    resized = mask.convert("L").resize((width, height), Image.NEAREST)
            except (UnidentifiedImageError, OSError) as err:
                raise ImageReadError(f"cannot read instance mask {path}: {err}") from None
            masks[k] = torch.from_numpy(np.asarray(resized) > 0)
        return masks


class OpenImagesDataModule(ImageDataModule):
    """Each split is a dict of OpenImagesDataset arguments (image_dir, bbox_csv, labels_csv, subset_list)."""

    def __init__(
        self,
        train: dict | None = None,
        val: dict | None = None,
        test: dict | None = None,
        classes: str | list[str] = "coco",
        crop_size: int = 256,
        val_crop_size: int | None = None,
        unknown_labels: Literal["error", "drop"] = "error",
        on_bad_image: BadImagePolicy = "error",
        invalid_boxes: InvalidBoxPolicy = "error",
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        self.unknown_labels = unknown_labels
        self.invalid_boxes = invalid_boxes
        self.splits = {name: spec for name, spec in {"train": train, "val": val, "test": test}.items() if spec}
        if not self.splits:
            raise ValueError("openimages needs at least one of train, val, test")
        self.classes = classes
        self.crop_size = check_count(crop_size, "crop_size")
        self.val_crop_size = check_count(val_crop_size, "val_crop_size", allow_none=True)
        self.on_bad_image = on_bad_image

    def make_datasets(self, stage):
        return {
            name: OpenImagesDataset(
                **spec,
                classes=self.classes,
                crop_size=self.crop_size if name == "train" else self.val_crop_size,
                train=name == "train",
                unknown_labels=self.unknown_labels,
                invalid_boxes=self.invalid_boxes,
                on_bad_image=self.on_bad_image,
            )
            for name, spec in self.splits.items()
        }
