"""vcm-eval's parts: rate points (`rate_points.py`: what is coded), the loop (`runner.py`: every image
through a sender and a receiver, real bitstream files, per-image rows and a summary), task scores
(`task_scores.py`) and the outputs (`outputs.py`: summaries.json, RD plot, W&B). `evaluate(cfg)` runs
a composed eval config end to end; `lossless.py` is the lossless mode (codec=lossless), `video.py`
the video mode (video data with a video codec); new modes (shards) plug in as their own modules.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from datamodules.video import VideoClipDataset
from vcmlab.config_checks import check_config
from vcmlab.errors import ConfigError
from vcmlab.evaluation.lossless import evaluate_lossless
from vcmlab.evaluation.outputs import write_outputs
from vcmlab.evaluation.rate_points import RatePoint, build_rate_points
from vcmlab.evaluation.runner import evaluate_rate_point
from vcmlab.evaluation.task_scores import TaskScorer
from vcmlab.evaluation.video import evaluate_video

__all__ = ["RatePoint", "TaskScorer", "build_rate_points", "evaluate", "evaluate_rate_point"]

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> list[dict]:
    """Every rate point of `cfg.codec` on the configured split; returns the rate points' summaries."""
    check_config(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    dataset = datamodule.datasets[cfg.split if cfg.split in datamodule.datasets else "val"]
    if cfg.codec.kind == "lossless":
        return evaluate_lossless(cfg, dataset)
    video = isinstance(dataset, VideoClipDataset)
    if video != (cfg.codec.kind == "video"):
        raise ConfigError(
            f"codec.kind={cfg.codec.kind!r} on {'video' if video else 'image'} data: video data takes a video codec "
            "(codec=hevc_ldp, av1_ldp or video_checkpoints), image data an image codec"
        )
    task = instantiate(cfg.task) if cfg.get("task") else None
    scorer = (
        TaskScorer(task, cfg.get("metric_reference", "labels"), cfg.get("pseudo_gt_score", 0.5))
        if task is not None
        else None
    )
    out_root = Path(cfg.paths.output_dir)
    if video:
        summaries = evaluate_video(cfg, dataset, scorer)
        write_outputs(cfg, summaries, out_root)
        return summaries
    summaries = []
    # built outside inference mode: update() makes CDF and bound buffers that a latent refiner's
    # autograd must be able to use
    points = build_rate_points(cfg.codec, cfg.device)
    with torch.inference_mode():
        for point in points:
            summary = evaluate_rate_point(
                point, dataset, out_root / point.name, scorer, cfg.get("yuv_psnr_matrix", "bt601")
            )
            log.info("%s: %s", point.name, {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
            summaries.append(summary)
    write_outputs(cfg, summaries, out_root)
    return summaries
