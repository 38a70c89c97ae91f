"""The evaluation loop: every image of a data set through one rate point's sender and receiver, with
real bitstream files; rate, quality and task scores per image and per rate point."""

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
from datamodules.image_datasets import usable_items
from vcm_metrics import ms_ssim, psnr, yuv_psnr
from vcm_metrics.artifacts import checkerboard_score
from vcmlab.errors import InputError
from vcmlab.evaluation.outputs import write_csv
from vcmlab.evaluation.rate_points import RatePoint
from vcmlab.evaluation.task_scores import TaskScorer


def round_trip(sender, receiver, x, path: Path) -> tuple[bytes, object, float, float]:
    """`x` coded by `sender` into the file `path`, read back and decoded by `receiver`: (the file's
    bytes, the decoded tensor on the CPU, encode seconds, decode seconds)."""
    start = time.perf_counter()
    encoded = sender.encode(x)
    encode_s = time.perf_counter() - start  # the encoder alone, as before the helper: not the file write
    path.write_bytes(encoded)
    start = time.perf_counter()
    data = path.read_bytes()
    decoded = receiver.decode(data).cpu()
    return data, decoded, encode_s, time.perf_counter() - start


def evaluate_rate_point(
    point: RatePoint,
    dataset,
    out_dir: Path,
    scorer: TaskScorer | None,
    yuv_matrix: str = "bt601",
    progress: bool = True,
) -> dict:
    stream_dir = out_dir / "bitstreams"
    stream_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    if scorer is not None:
        scorer.begin()
    items = usable_items(dataset)
    for item in tqdm(items, total=len(dataset), desc=point.name, unit="img", disable=not progress):
        x, name = item["image"], item["name"]
        data, x_hat, encode_s, decode_s = round_trip(point.sender, point.receiver, x, stream_dir / f"{name}.bin")
        h, w = x.shape[-2:]
        payload = payload_bytes(point.sender, data)
        rows.append(
            {
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
                "encode_s": encode_s,
                "decode_s": decode_s,
            }
        )
        if isinstance(point.sender, LearnedCodec):
            rows[-1]["bpp_est"] = point.sender.estimated_bits(x) / (h * w)
            rows[-1]["aux_loss_checkpoint"] = point.sender.aux_loss_before
        if isinstance(point.sender, BiasSetCodec):
            rows[-1]["bias_set"] = point.sender.codec.side_info(data)[0]
        rows[-1] |= getattr(point.sender, "last_encode_info", {})  # side-information sizes, filter choices
        if scorer is not None:
            scorer.observe(name, x, x_hat, item)
    if not rows:
        raise InputError(f"{point.name}: no usable image in the dataset (all {len(dataset)} were skipped)")
    write_csv(out_dir / "per_image.csv", rows)
    summary = {
        "name": point.name,
        "checkpoint": point.checkpoint,
        "scale": point.scale,
        "images": len(rows),
        "codec_settings": settings_of(point.sender),
    }
    learned = point.receiver if isinstance(point.receiver, LearnedCodec) else getattr(point.receiver, "codec", None)
    if isinstance(learned, LearnedCodec):
        summary |= learned.complexity
    summary["skipped_images"] = len(getattr(dataset, "skipped", ()))
    summary["yuv_psnr_matrix"] = yuv_matrix
    summary |= {
        k: float(np.mean([r[k] for r in rows]))
        for k in (
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
            "encode_s",
            "decode_s",
            "bpp_est",
            "aux_loss_checkpoint",
        )
        if k in rows[0]
    }
    if "side_info_bytes" in rows[0]:
        summary["side_info_bpp"] = float(np.mean([8 * r["side_info_bytes"] / (r["height"] * r["width"]) for r in rows]))
    choices = sorted(k for k in rows[0] if k.startswith("choice_"))
    if choices:  # how often each option won over all blocks: no filter, filter 0, filter 1, ...
        counts = np.array([sum(r[k] for r in rows) for k in choices], dtype=float)
        summary["filter_usage"] = (counts / counts.sum()).tolist()
    if "bpp_est" in summary:  # what the real bitstream costs beyond the entropy model's estimate
        summary["bit_overhead_percent"] = 100 * (summary["bpp"] / summary["bpp_est"] - 1)
    if scorer is not None:
        serialisable = {n: {k: v.tolist() for k, v in p.items() if k != "masks"} for n, p in scorer.predictions.items()}
        (out_dir / "predictions.json").write_text(json.dumps(serialisable))
        summary |= scorer.scores()
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
