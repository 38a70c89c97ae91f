"""vcm-eval's parts: rate points (`rate_points.py`: what is coded), one image through a sender and a
receiver into a real bitstream and a record, and a rate point's outputs from records (`runner.py`,
`records.py`), image evaluations in worker processes, shards and resumed runs (`images.py`,
`manifest.py`, `merge.py`), task scores (`task_scores.py`) and the outputs (`outputs.py`:
summaries.json, RD plot, W&B). `evaluate(cfg)` runs a composed eval config end to end; `lossless.py`
is the lossless mode (codec=lossless), `video.py` the video mode (video data with a video codec).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from datamodules.video import VideoClipDataset
from vcmlab.config_checks import check_config
from vcmlab.errors import ConfigError
from vcmlab.evaluation.images import evaluate_images, evaluation_split, make_scorer
from vcmlab.evaluation.lossless import evaluate_lossless
from vcmlab.evaluation.merge import merge_shards
from vcmlab.evaluation.outputs import write_outputs
from vcmlab.evaluation.rate_points import RatePoint, build_rate_points
from vcmlab.evaluation.runner import evaluate_rate_point
from vcmlab.evaluation.task_scores import TaskScorer
from vcmlab.evaluation.video import evaluate_video

__all__ = ["RatePoint", "TaskScorer", "build_rate_points", "evaluate", "evaluate_rate_point"]


def evaluate(cfg: DictConfig) -> list[dict]:
    """Every rate point of `cfg.codec` on the configured split (or, with `merge`, the shards' merge);
    returns the rate points' summaries (none for one shard of several)."""
    check_config(cfg)
    if cfg.get("merge"):
        return merge_shards(cfg)
    dataset = evaluation_split(cfg)
    video = isinstance(dataset, VideoClipDataset)
    if cfg.codec.kind == "lossless" or video:
        for key in ("workers", "num_shards"):
            if cfg.get(key, 1) != 1:
                raise ConfigError(f"{key}={cfg[key]}: only image evaluations run in parallel or in shards so far")
    if cfg.codec.kind == "lossless":
        return evaluate_lossless(cfg, dataset)
    if video != (cfg.codec.kind == "video"):
        raise ConfigError(
            f"codec.kind={cfg.codec.kind!r} on {'video' if video else 'image'} data: video data takes a video codec "
            "(codec=hevc_ldp, av1_ldp or video_checkpoints), image data an image codec"
        )
    if not video:
        return evaluate_images(cfg, dataset)
    out_root = Path(cfg.paths.output_dir)
    summaries = evaluate_video(cfg, dataset, make_scorer(cfg))
    write_outputs(cfg, summaries, out_root)
    return summaries
