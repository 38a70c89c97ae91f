"""Time of one full OpenImages-protocol evaluation of the MPEG-VCM 5k subset (12.6k boxes) with 100
detections per image (jittered ground truth plus random boxes of random verified classes).

    python -m benchmarks.openimages_map_speed --out bench-results/openimages_map_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from datamodules.openimages import read_annotations
from vcm_metrics import evaluate_openimages

OIV6 = Path(__file__).resolve().parents[2] / "shared" / "data" / "oiv6-mpeg-vcm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=OIV6)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/openimages_map_speed.json"))
    args = parser.parse_args()
    annotations = read_annotations(
        args.data / "detection_validation_5k_bbox.csv", args.data / "detection_validation_labels_5k.csv"
    )
    rng = np.random.default_rng(0)
    classes = sorted({label for a in annotations.values() for label in a.labels})
    gt, det = {}, {}
    for image_id, a in annotations.items():
        boxes = np.array(a.boxes, dtype=float).reshape(-1, 4)
        gt[image_id] = {
            "boxes": boxes,
            "labels": np.array(a.labels, dtype=object),
            "is_group_of": np.array(a.group_of),
            "image_labels": sorted(a.positive_labels | a.negative_labels),
        }
        n_extra = args.detections - len(boxes)
        xy = rng.uniform(0, 0.8, (n_extra, 2))
        extra = np.column_stack([xy, xy + rng.uniform(0.05, 0.2, (n_extra, 2))])
        det[image_id] = {
            "boxes": np.concatenate([boxes + rng.normal(0, 0.02, boxes.shape), extra])[: args.detections],
            "labels": np.concatenate([np.array(a.labels, dtype=object), rng.choice(classes, n_extra)])[
                : args.detections
            ],
            "scores": rng.uniform(0, 1, max(args.detections, len(boxes)))[: args.detections],
        }
    times, result = [], None
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = evaluate_openimages(gt, det)
        times.append(time.perf_counter() - start)
    report = {
        "benchmark": "openimages_map_speed",
        "images": len(gt),
        "gt_boxes": int(sum(len(g["boxes"]) for g in gt.values())),
        "detections_per_image": args.detections,
        "seconds_best": min(times),
        "seconds_all": times,
        "map": result["map"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
