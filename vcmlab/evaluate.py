"""vcm-eval: code every image of a dataset into real bitstream files, at every rate point of a learned
codec (one checkpoint each) or a conventional codec (QP ladder × resize ladder), decode them with a
separately built receiver, and measure rate, quality and (with a task network) machine-task accuracy
against the annotations or, with `metric_reference=uncompressed`, against the task network's own
predictions on the uncompressed images (vcmlab/task_evaluation.py).

Outputs under the run directory: <rate point>/{bitstreams/, per_image.csv, predictions.json,
summary.json}, summaries.json (all rate points, the input of vcm-bdrate) and rd_plot.png.

Rates: `bpp` counts the codec's payload (entropy-coded or standard stream plus side information), what
BD-rates compare; `file_bpp` counts every byte of the file; the difference is container (checksums,
model fingerprint, size prefixes), reported as `container_bytes`. Conventional streams are sealed with
a checksum (conventional_codecs.container), so a damaged file is refused, not scored.
"""
from __future__ import annotations

import csv
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from pytorch_lightning.loggers import WandbLogger
from tqdm import tqdm

from codec_networks import LearnedCodec
from codec_networks.bias_sets import BiasSetCodec
from codec_networks.postfilter_codecs import AdaptedFilterCodec, BlockFilterCodec
from conventional_codecs import ImageCodec, ScaledCodec
from conventional_codecs.base import settings_of
from conventional_codecs.container import SealedCodec, payload_bytes
from task_networks import TaskNetwork
from vcm_metrics import ms_ssim, psnr, yuv_psnr
from vcm_metrics.artifacts import checkerboard_score
from vcmlab import CONF_DIR
from vcmlab.checkpoints import load_codec, load_filter_bank, read_tensor_file
from vcmlab.cli import report_user_errors, user_error
from vcmlab.config_checks import check_config
from vcmlab.errors import ConfigError, InputError
from vcmlab.instantiate import instantiate_group
from vcmlab.rd_plot import plot_rd_curves, read_summaries
from vcmlab.task_evaluation import TaskScorer

log = logging.getLogger(__name__)


AUX_LOSS_CONVERGED = 1.0  # CompressAI's aux loss of a converged bottleneck: ~1e-3; an untrained one: ~1e3


@dataclass
class RatePoint:
    name: str
    sender: ImageCodec
    receiver: ImageCodec  # a separate instance for learned codecs: decoding must not rely on encoder state
    source: str
    scale: float = 1.0  # of the resize ladder


def build_rate_points(codec_cfg: DictConfig, device: str) -> list[RatePoint]:
    if codec_cfg.kind == "learned":
        paths = codec_cfg.ckpt_paths
        paths = list(paths) if isinstance(paths, (list, ListConfig)) else [paths]
        if not paths:
            raise ConfigError("codec.ckpt_paths is empty: give one checkpoint per rate point")
        refiner = instantiate(codec_cfg.latent_refiner) if codec_cfg.get("latent_refiner") else None
        bias_sets = codec_cfg.get("bias_sets")
        if bias_sets is not None:  # one file per checkpoint: each decoder has its own biases
            bias_sets = list(bias_sets) if isinstance(bias_sets, (list, ListConfig)) else [bias_sets]
            if len(bias_sets) != len(paths):
                raise ValueError(f"codec.bias_sets needs one file per checkpoint ({len(paths)}), got {len(bias_sets)}")

        def make_codec(i: int, refine: bool) -> ImageCodec:
            learned = LearnedCodec(load_codec(paths[i]), device, latent_refiner=refiner if refine else None)
            if refine and learned.aux_loss_before > AUX_LOSS_CONVERGED:
                message = (f"{paths[i]}: the entropy bottlenecks' quantiles were not converged (aux loss {learned.aux_loss_before:.4g}); "
                           f"converged before coding ({learned.aux_loss:.2g}), sender and receiver alike. Train longer or check the aux optimizer.")
                warnings.warn(message, stacklevel=2)
                log.warning(message)
            return BiasSetCodec(learned, read_tensor_file(bias_sets[i], "codec.bias_sets file")) if bias_sets else learned

        return [RatePoint(f"rate_point_{i}", make_codec(i, True), make_codec(i, False), str(p)) for i, p in enumerate(paths)]
    if codec_cfg.kind == "conventional":
        for key in ("ladder", "scales"):
            if not isinstance(codec_cfg.get(key), (list, ListConfig)) or not codec_cfg[key]:
                raise ConfigError(f"codec.{key} must be a non-empty list, got {codec_cfg.get(key)!r}")
        postfilter = codec_cfg.get("postfilter")
        bank = load_filter_bank(postfilter.ckpt_path) if postfilter else None
        filter_task = instantiate(postfilter.task) if postfilter and postfilter.get("task") else None  # one for all rate points
        points = []
        for scale in codec_cfg.scales:
            for value in codec_cfg.ladder:
                codec = ScaledCodec(build_ladder_codec(codec_cfg, value), scale)
                if bank is not None:
                    codec = with_postfilter(codec, bank, postfilter, value, device, filter_task)
                codec = SealedCodec(codec)
                points.append(RatePoint(codec.name, codec, codec, codec.name, float(scale)))
        return points
    raise ConfigError(f"codec.kind must be 'learned' or 'conventional', got {codec_cfg.kind!r}")


def build_ladder_codec(codec_cfg: DictConfig, value) -> ImageCodec:
    """The conventional codec at one ladder value; a bad value is a ConfigError naming codec.ladder."""
    try:
        return instantiate(codec_cfg.codec, **{codec_cfg.ladder_key: value})
    except Exception as err:
        message = user_error(err)
        if message is None:
            raise
        raise ConfigError(f"codec.ladder value {value!r}: {message.removeprefix('codec.codec: ')}") from None


def with_postfilter(codec: ImageCodec, bank, cfg: DictConfig, qp: float, device: str, task: TaskNetwork | None = None) -> ImageCodec:
    """Method 1 (adapt: null): per-block choice among the bank's filters (by MSE, or by the features of
    `task`); method 9 (adapt set): one filter of the bank finetuned on each image, its update in the stream."""
    if cfg.get("adapt") is None:
        return BlockFilterCodec(codec, bank, qp, cfg.block_size, cfg.objective, task, device)
    adapt = cfg.adapt
    if not 0 <= adapt.filter_index < len(bank):
        raise ValueError(f"codec.postfilter.adapt.filter_index={adapt.filter_index}, but the bank has {len(bank)} filters")
    return AdaptedFilterCodec(codec, bank.filters[adapt.filter_index], qp, adapt.params, adapt.steps, adapt.lr, adapt.step, device)


def evaluate_rate_point(point: RatePoint, dataset, out_dir: Path, scorer: TaskScorer | None, yuv_matrix: str = "bt601") -> dict:
    stream_dir = out_dir / "bitstreams"
    stream_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    if scorer is not None:
        scorer.begin()
    items = dataset.usable_items() if hasattr(dataset, "usable_items") else (dataset[i] for i in range(len(dataset)))
    for item in tqdm(items, total=len(dataset), desc=point.name, unit="img"):
        x, name = item["image"], item["name"]
        start = time.perf_counter()
        data = point.sender.encode(x)
        encode_s = time.perf_counter() - start
        path = stream_dir / f"{name}.bin"
        path.write_bytes(data)
        start = time.perf_counter()
        x_hat = point.receiver.decode(path.read_bytes()).cpu()
        decode_s = time.perf_counter() - start
        h, w = x.shape[-2:]
        payload = payload_bytes(point.sender, data)
        rows.append({
            "name": name, "height": h, "width": w, "bytes": len(data), "payload_bytes": payload, "container_bytes": len(data) - payload,
            "bpp": 8 * payload / (h * w), "file_bpp": 8 * len(data) / (h * w),
            "psnr": float(psnr(x_hat[None], x[None])), **yuv_psnr(x_hat, x, yuv_matrix), "ms_ssim": float(ms_ssim(x_hat[None], x[None])),
            "checkerboard": float(checkerboard_score(x_hat[None], x[None])),
            "encode_s": encode_s, "decode_s": decode_s,
        })
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
    with open(out_dir / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {"name": point.name, "source": point.source, "scale": point.scale, "images": len(rows), "codec_settings": settings_of(point.sender)}
    summary["skipped_images"] = len(getattr(dataset, "skipped", ()))
    summary["yuv_psnr_matrix"] = yuv_matrix
    summary |= {k: float(np.mean([r[k] for r in rows])) for k in ("bpp", "file_bpp", "container_bytes", "psnr", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ms_ssim", "checkerboard", "encode_s", "decode_s", "bpp_est", "aux_loss_checkpoint") if k in rows[0]}
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


def evaluate(cfg: DictConfig) -> list[dict]:
    check_config(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    dataset = datamodule.datasets[cfg.split if cfg.split in datamodule.datasets else "val"]
    task = instantiate(cfg.task) if cfg.get("task") else None
    scorer = TaskScorer(task, cfg.get("metric_reference", "labels"), cfg.get("pseudo_gt_score", 0.5)) if task is not None else None
    out_root = Path(cfg.paths.output_dir)
    summaries = []
    # built outside inference mode: update() makes CDF and bound buffers that a latent refiner's
    # autograd must be able to use
    points = build_rate_points(cfg.codec, cfg.device)
    with torch.inference_mode():
        for point in points:
            summary = evaluate_rate_point(point, dataset, out_root / point.name, scorer, cfg.get("yuv_psnr_matrix", "bt601"))
            log.info("%s: %s", point.name, {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
            summaries.append(summary)
    (out_root / "summaries.json").write_text(json.dumps(summaries, indent=2) + "\n")
    anchors = {Path(p).parent.name or str(p): read_summaries(Path(p)) for p in cfg.get("anchors") or []}
    plot = plot_rd_curves({cfg.get("label") or cfg.codec.kind: summaries, **anchors}, out_root / "rd_plot.png")
    for logger in instantiate_group(cfg.get("logger")):
        if isinstance(logger, WandbLogger):
            columns = list(dict.fromkeys(k for s in summaries for k in s))
            logger.log_table(key="eval/rate_points", columns=columns, data=[[_cell(s.get(c)) for c in columns] for s in summaries])
            _log_filter_usage(logger, summaries)
            logger.log_image(key="eval/rd_plot", images=[str(plot)])
            logger.experiment.finish()
    return summaries


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value  # W&B table cells are scalars


def _log_filter_usage(logger: WandbLogger, summaries: list[dict]) -> None:
    """One W&B histogram per rate point: bin 0 = no filter, bin j = filter j-1."""
    import wandb

    for s in summaries:
        if "filter_usage" in s:
            edges = [j - 0.5 for j in range(len(s["filter_usage"]) + 1)]
            logger.experiment.log({f"eval/filter_usage/{s['name']}": wandb.Histogram(np_histogram=(s["filter_usage"], edges))})


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@report_user_errors("vcm-eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
