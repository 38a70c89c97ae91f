"""The evaluation of images: one image through one rate point's sender and receiver into a real
bitstream file and a record (`code_image`), and a rate point's outputs from its records
(`write_rate_point`); `evaluate_rate_point` runs both over a data set in this process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from codec_networks import LearnedCodec
from codec_networks.bias_sets import BiasSetCodec
from conventional_codecs.base import settings_of
from conventional_codecs.container import payload_bytes
from datamodules.image_datasets import item_or_none
from vcm_metrics import ms_ssim, psnr, yuv_psnr
from vcm_metrics.artifacts import checkerboard_score
from vcmlab.errors import InputError
from vcmlab.evaluation.outputs import TIMING_COLUMNS, write_csv
from vcmlab.evaluation.rate_points import RatePoint
from vcmlab.evaluation.records import bitstream_path, sha256, source_sha256, write_atomic, write_record
from vcmlab.evaluation.task_scores import TaskScorer, score_task_records

MEAN_COLUMNS = (
    "bpp",
    "file_bpp",
    "container_bytes",
    "psnr",
    "psnr_y",
    "psnr_u",
    "psnr_v",
    "psnr_yuv",
    "ms_ssim",
    "checkerboard",
    *TIMING_COLUMNS,
    "bpp_est",
    "aux_loss_checkpoint",
)


def round_trip(sender, receiver, x, path: Path) -> tuple[bytes, object, float, float]:
    """`x` coded by `sender` into the file `path`, read back and decoded by `receiver`: (the file's
    bytes, the decoded tensor on the CPU, encode seconds, decode seconds)."""
    start = time.perf_counter()
    encoded = sender.encode(x)
    encode_s = time.perf_counter() - start  # the encoder alone, as before the helper: not the file write
    write_atomic(path, encoded)
    start = time.perf_counter()
    data = path.read_bytes()
    decoded = receiver.decode(data).cpu()
    return data, decoded, encode_s, time.perf_counter() - start


def code_image(
    point: RatePoint, item: dict, index: int, point_dir: Path, scorer: TaskScorer | None, yuv_matrix: str
) -> dict:
    """One image through one rate point: its bitstream file and its record (vcmlab/evaluation/records.py)."""
    x, name = item["image"], item["name"]
    data, x_hat, encode_s, decode_s = round_trip(point.sender, point.receiver, x, bitstream_path(point_dir, name))
    start = time.perf_counter()
    h, w = x.shape[-2:]
    payload = payload_bytes(point.sender, data)
    row = {
        "name": name,
        "height": h,
        "width": w,
        "bytes": len(data),
        "payload_bytes": payload,
        "container_bytes": len(data) - payload,
        "bpp": 8 * payload / (h * w),
        "file_bpp": 8 * len(data) / (h * w),
        "psnr": float(psnr(x_hat[None], x[None])),
        **yuv_psnr(x_hat, x, yuv_matrix),
        "ms_ssim": float(ms_ssim(x_hat[None], x[None])),
        "checkerboard": float(checkerboard_score(x_hat[None], x[None])),
    }
    extra = {}
    if isinstance(point.sender, LearnedCodec):
        extra["bpp_est"] = point.sender.estimated_bits(x) / (h * w)
        extra["aux_loss_checkpoint"] = point.sender.aux_loss_before
    if isinstance(point.sender, BiasSetCodec):
        extra["bias_set"] = point.sender.codec.side_info(data)[0]
    extra |= getattr(point.sender, "last_encode_info", {})  # side-information sizes, filter choices
    metrics_s = time.perf_counter() - start
    record = {"index": index, "name": name, "source_sha256": source_sha256(item)}
    record["bitstream"] = {"bytes": len(data), "sha256": sha256(data)}
    start = time.perf_counter()
    if scorer is not None:
        scorer.begin()  # one image's record at a time: the records hold what is kept
        record["task"] = scorer.observe(name, x, x_hat, item)
    row |= {"encode_s": encode_s, "decode_s": decode_s, "task_s": time.perf_counter() - start, "metrics_s": metrics_s}
    row |= extra
    record["row"] = row
    write_record(point_dir, record)
    return json.loads(json.dumps(record))  # as a reader of the file sees it: one path to every figure


def point_info(point: RatePoint) -> dict:
    """What a rate point's summary states besides its figures; JSON values (a shard stores them)."""
    info = {
        "name": point.name,
        "checkpoint": point.checkpoint,
        "scale": point.scale,
        "codec_settings": settings_of(point.sender),
    }
    learned = point.receiver if isinstance(point.receiver, LearnedCodec) else getattr(point.receiver, "codec", None)
    if isinstance(learned, LearnedCodec):
        info["complexity"] = learned.complexity
    return json.loads(json.dumps(info))


def summarise(info: dict, records: list[dict], scoring: dict | None, skipped: int, yuv_matrix: str) -> dict:
    """A rate point's summary from its records (in data set order), as a run and a merge of shards write it."""
    if not records:
        raise InputError(f"{info['name']}: no usable image in the dataset (all {skipped} were skipped)")
    rows = [r["row"] for r in records]
    summary = {k: info[k] for k in ("name", "checkpoint", "scale")}
    summary |= {"images": len(rows), "codec_settings": info["codec_settings"], **info.get("complexity", {})}
    summary["skipped_images"] = skipped
    summary["yuv_psnr_matrix"] = yuv_matrix
    summary |= {k: float(np.mean([r[k] for r in rows])) for k in MEAN_COLUMNS if k in rows[0]}
    if "side_info_bytes" in rows[0]:
        summary["side_info_bpp"] = float(np.mean([8 * r["side_info_bytes"] / (r["height"] * r["width"]) for r in rows]))
    choices = sorted(k for k in rows[0] if k.startswith("choice_"))
    if choices:  # how often each option won over all blocks: no filter, filter 0, filter 1, ...
        counts = np.array([sum(r[k] for r in rows) for k in choices], dtype=float)
        summary["filter_usage"] = (counts / counts.sum()).tolist()
    if "bpp_est" in summary:  # what the real bitstream costs beyond the entropy model's estimate
        summary["bit_overhead_percent"] = 100 * (summary["bpp"] / summary["bpp_est"] - 1)
    if scoring is not None:
        summary |= score_task_records(scoring, {r["name"]: r["task"] for r in records})
    return summary


def write_rate_point(
    point_dir: Path, info: dict, records: list[dict], scoring: dict | None, skipped: int, yuv_matrix: str
) -> dict:
    """per_image.csv, predictions.json (with a task network) and summary.json of one rate point."""
    summary = summarise(info, records, scoring, skipped, yuv_matrix)
    point_dir.mkdir(parents=True, exist_ok=True)
    write_csv(point_dir / "per_image.csv", [r["row"] for r in records])
    if scoring is not None:
        predictions = {r["name"]: {k: v for k, v in r["task"]["prediction"].items() if k != "masks"} for r in records}
        (point_dir / "predictions.json").write_text(json.dumps(predictions))
    (point_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate_rate_point(
    point: RatePoint,
    dataset,
    out_dir: Path,
    scorer: TaskScorer | None,
    yuv_matrix: str = "bt601",
    progress: bool = True,
) -> dict:
    """Every usable image of `dataset` (or list of items) through one rate point, in this process."""
    records, skipped = [], 0
    for index in tqdm(range(len(dataset)), desc=point.name, unit="img", disable=not progress):
        item = item_or_none(dataset, index)
        if item is None:
            skipped += 1
            continue
        records.append(code_image(point, item, index, out_dir, scorer, yuv_matrix))
    scoring = scorer.scoring if scorer is not None else None
    return write_rate_point(out_dir, point_info(point), records, scoring, skipped, yuv_matrix)
