"""vcm-eval on video (`data=video_*` with `codec=hevc_ldp|av1_ldp|video_checkpoints|nnvvc`, or the
random-access / VVC anchors `hevc_ra|vvenc_ra|vvenc_ld|vtm_ra|vtm_ld`): every sequence coded into one
real file per rate point (an intra frame every `codec.intra_period` frames, low-delay P between them,
the same structure for learned and conventional codecs), decoded back by a separate receiver and
measured per frame (display order) and per sequence.

Outputs per rate point: bitstreams/<sequence>.bin, per_frame.csv (type, bytes, bpp, PSNR, YUV PSNR,
MS-SSIM of each frame), per_sequence.csv, predictions.json (with a task network) and summary.json;
then summaries.json and rd_plot.png as for images, so vcm-bdrate reads video runs unchanged. A rate
point's bpp and qualities are means over sequences (a sequence's bpp: its payload bits over frames x
pixels; its PSNR: the mean of its frames' PSNR), as JVET's test conditions average them.

YUV PSNR (psnr_y/u/v and the 6:1:1 psnr_yuv): for sources that store Y'CbCr planes (raw .yuv, video
files), JVET's measure, against the stored planes at their bit depth and 4:2:0 resolution; the
conventional decoder's own planes are compared when its colour format is the source's, a learned
codec's RGB output is converted with the source's format. For RGB frame folders: both RGB frames
converted with `yuv_psnr_matrix`, as for images. Summaries say which (`yuv_psnr_source`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig
from tqdm import tqdm

from codec_networks.video_codec import LearnedVideoCodec, VideoCodec, is_video_model
from codec_networks.video_overfitting import MultiplicativeOverfitting
from conventional_codecs.base import settings_of
from conventional_codecs.container import payload_bytes
from datamodules.video import VideoClipDataset
from vcm_metrics import ms_ssim, plane_psnr, psnr, yuv_psnr
from vcmlab.checkpoints import load_codec, read_checkpoint, stored_config
from vcmlab.errors import ConfigError
from vcmlab.evaluation.nnvvc_points import build_nnvvc_rate_points
from vcmlab.evaluation.outputs import write_csv
from vcmlab.evaluation.rate_points import build_ladder_codec
from vcmlab.evaluation.runner import round_trip
from vcmlab.evaluation.task_scores import TaskScorer

FRAME_MEANS = ("psnr", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ms_ssim")  # a sequence's: over its frames
SEQUENCE_MEANS = ("bpp", "file_bpp", "container_bytes", *FRAME_MEANS)  # a rate point's: over sequences
SECONDS = ("encode_s", "decode_s", "encode_fps", "decode_fps")


@dataclass
class VideoRatePoint:
    name: str
    sender: VideoCodec
    receiver: VideoCodec  # learned: a second model built from the file
    checkpoint: str | None = None


def overfitting_of(codec_cfg: DictConfig, checkpoint: dict, path) -> MultiplicativeOverfitting | None:
    """codec.overfitting {steps, lr, distortion_weight (null: the checkpoint's module.loss one),
    exponents (candidate steps 2^-k)} or null."""
    cfg = codec_cfg.get("overfitting")
    if cfg is None or not cfg.get("steps"):
        return None
    known = {"steps", "lr", "distortion_weight", "exponents"}
    if set(cfg) - known:
        raise ConfigError(f"codec.overfitting: unknown keys {sorted(set(cfg) - known)} (known: {sorted(known)})")
    weight = cfg.get("distortion_weight")
    if weight is None:
        loss = (stored_config(checkpoint, path).get("module") or {}).get("loss") or {}
        weight = loss.get("distortion_weight")
        if not isinstance(weight, (int, float)):
            raise ConfigError(f"{path}: no stored module.loss.distortion_weight: set it in codec.overfitting")
    defaults = MultiplicativeOverfitting()
    exponents = tuple(int(k) for k in cfg.get("exponents") or defaults.exponents)
    return MultiplicativeOverfitting(int(cfg.steps), float(cfg.get("lr", defaults.lr)), float(weight), exponents)


def build_video_rate_points(codec_cfg: DictConfig, device: str) -> list[VideoRatePoint]:
    """One rate point per checkpoint (`ckpt_paths`) or per ladder value of a conventional video codec."""
    intra_period = codec_cfg.get("intra_period")
    if codec_cfg.get("lic_ckpt_paths") is not None:
        return build_nnvvc_rate_points(codec_cfg, device, VideoRatePoint)
    if codec_cfg.get("ckpt_paths") is not None:
        paths = codec_cfg.ckpt_paths
        paths = list(paths) if isinstance(paths, (list, ListConfig)) else [paths]
        if not paths:
            raise ConfigError("codec.ckpt_paths is empty: give one video checkpoint per rate point")

        def make(path) -> LearnedVideoCodec:
            checkpoint = read_checkpoint(path)
            model = load_codec(path, checkpoint)
            if not is_video_model(model):
                raise ConfigError(f"{path} holds an image codec: evaluate it on image data with codec=checkpoints")
            if codec_cfg.get("resolution_adaptive") is not None:  # encoder-side: the bitstream does not change
                if not hasattr(model, "resolution_adaptive"):
                    raise ConfigError(f"codec.resolution_adaptive: {type(model).__name__} has no such switch")
                model.resolution_adaptive = bool(codec_cfg.resolution_adaptive)
            return LearnedVideoCodec(
                model, device, intra_period=intra_period, overfitting=overfitting_of(codec_cfg, checkpoint, path)
            )

        return [VideoRatePoint(f"rate_point_{i}", make(p), make(p), str(p)) for i, p in enumerate(paths)]
    if not isinstance(codec_cfg.get("ladder"), (list, ListConfig)) or not codec_cfg.ladder:
        raise ConfigError(f"codec.ladder must be a non-empty list, got {codec_cfg.get('ladder')!r}")
    points = []
    for value in codec_cfg.ladder:
        codec = build_ladder_codec(codec_cfg, value)
        points.append(VideoRatePoint(codec.name, codec, codec))
    return points


def evaluate_video(cfg: DictConfig, dataset: VideoClipDataset, scorer: TaskScorer | None) -> list[dict]:
    """Every rate point of `cfg.codec` on every sequence of `dataset`; returns the summaries."""
    points = build_video_rate_points(cfg.codec, cfg.device)
    matrix = cfg.get("yuv_psnr_matrix", "bt601")
    with torch.inference_mode():
        return [
            evaluate_video_rate_point(point, dataset, Path(cfg.paths.output_dir) / point.name, scorer, matrix)
            for point in points
        ]


def evaluate_video_rate_point(
    point: VideoRatePoint,
    dataset: VideoClipDataset,
    out_dir: Path,
    scorer: TaskScorer | None,
    yuv_matrix: str = "bt601",
    progress: bool = True,
) -> dict:
    stream_dir = out_dir / "bitstreams"
    stream_dir.mkdir(parents=True, exist_ok=True)
    if scorer is not None:
        scorer.begin()
    sequences, frame_rows, sources = [], [], set()
    for index in tqdm(range(len(dataset)), desc=point.name, unit="seq", disable=not progress):
        item = dataset[index]
        frames, name = item["frames"], item["name"]
        count, _, height, width = frames.shape
        path = stream_dir / f"{name}.bin"
        stored, decoded, encode_s, decode_s = round_trip(point.sender, point.receiver, frames, path)
        if decoded.shape != frames.shape:
            raise ValueError(f"{point.name}: {name} decoded to {tuple(decoded.shape)}, coded {tuple(frames.shape)}")
        yuv, source = _yuv_psnr(point.receiver, stored, decoded, frames, item, dataset.colour_of(index), yuv_matrix)
        sources.add(source)
        quality = ms_ssim(decoded, frames)
        rows = [
            {
                "sequence": name,
                "frame": item["start"] + t,
                "type": kind,
                "bytes": size,
                "bpp": 8 * size / (height * width),
                "psnr": float(psnr(decoded[t : t + 1], frames[t : t + 1])),
                **yuv[t],
                "ms_ssim": float(quality[t]),
            }
            for t, (kind, size) in enumerate(
                zip(point.sender.frame_types(stored), point.sender.frame_sizes(stored), strict=True)
            )
        ]
        frame_rows += rows
        payload = payload_bytes(point.sender, stored)
        sequence = {
            "name": name,
            "frames": count,
            "height": height,
            "width": width,
            "bytes": len(stored),
            "payload_bytes": payload,
            "container_bytes": len(stored) - payload,
            "bpp": 8 * payload / (count * height * width),
            "file_bpp": 8 * len(stored) / (count * height * width),
            **{k: float(np.mean([r[k] for r in rows])) for k in FRAME_MEANS},
            "encode_s": encode_s,
            "decode_s": decode_s,
            "encode_fps": count / encode_s,
            "decode_fps": count / decode_s,
            **getattr(point.sender, "last_encode_info", {}),  # bytes of overfitted parameters (method 5)
        }
        if scorer is not None:
            names = [f"{name}/{t:05d}" for t in range(count)]
            for t, frame_name in enumerate(names):
                targets = {"targets": item["targets"][t]} if "targets" in item else {}
                scorer.observe(frame_name, frames[t], decoded[t], targets)
            sequence |= scorer.scores(names)  # per-sequence mAP, as SFU-HW results are reported
        sequences.append(sequence)
    write_csv(out_dir / "per_frame.csv", frame_rows)
    write_csv(out_dir / "per_sequence.csv", sequences)
    summary = {
        "name": point.name,
        "checkpoint": point.checkpoint,
        "sequences": len(sequences),
        "frames": sum(s["frames"] for s in sequences),
        "codec_settings": settings_of(point.sender),
        "yuv_psnr_source": " + ".join(sorted(sources)),
        **{k: float(np.mean([s[k] for s in sequences])) for k in (*SEQUENCE_MEANS, *SECONDS)},
    }
    if scorer is not None:
        serialisable = {n: {k: v.tolist() for k, v in p.items() if k != "masks"} for n, p in scorer.predictions.items()}
        (out_dir / "predictions.json").write_text(json.dumps(serialisable))
        summary |= scorer.scores()  # over every frame of every sequence, not a mean of sequences
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _yuv_psnr(receiver, data: bytes, decoded, frames, item: dict, colour, matrix: str) -> tuple[list[dict], str]:
    """Per-frame YUV PSNR and what it was measured on (see the module docstring)."""
    if "planes" not in item or colour is None:
        return [yuv_psnr(decoded[t], frames[t], matrix) for t in range(len(frames))], f"rgb ({matrix})"
    originals = [[p.numpy() for p in planes] for planes in item["planes"]]
    if getattr(receiver, "colour", None) == colour and hasattr(receiver, "decode_planes"):
        planes, source = receiver.decode_planes(data), "decoder planes"
    else:
        planes, source = [colour.to_planes(f) for f in decoded], f"planes from rgb ({colour.pix_fmt})"
    return [plane_psnr(d, o, colour.bit_depth) for d, o in zip(planes, originals, strict=True)], source
