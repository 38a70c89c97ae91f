"""The rate points of an evaluation: one per checkpoint of a learned codec, one per ladder value (and
resize scale) of a conventional codec, post-filters included; each with a sender and a receiver."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from compressai.models import CompressionModel
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from codec_networks import LearnedCodec
from codec_networks.bias_sets import BiasSetCodec
from codec_networks.postfilter_codecs import AdaptedFilterCodec, BlockFilterCodec
from conventional_codecs import ImageCodec, ScaledCodec
from conventional_codecs.container import SealedCodec
from task_networks import TaskNetwork
from vcmlab.checkpoints import load_codec, load_filter_bank, read_checkpoint, read_tensor_file, stored_config
from vcmlab.cli import user_error
from vcmlab.errors import ConfigError

log = logging.getLogger(__name__)


AUX_LOSS_CONVERGED = 1.0  # CompressAI's aux loss of a converged bottleneck: ~1e-3; an untrained one: ~1e3


@dataclass
class RatePoint:
    name: str
    sender: ImageCodec
    receiver: ImageCodec  # a separate instance for learned codecs: decoding must not rely on encoder state
    checkpoint: str | None = None  # a learned rate point's checkpoint file
    scale: float = 1.0  # of the resize ladder


def build_rate_points(codec_cfg: DictConfig, device: str) -> list[RatePoint]:
    if codec_cfg.kind == "learned":
        paths = codec_cfg.ckpt_paths
        paths = list(paths) if isinstance(paths, (list, ListConfig)) else [paths]
        if not paths:
            raise ConfigError("codec.ckpt_paths is empty: give one checkpoint per rate point")
        refiner_cfg = codec_cfg.get("latent_refiner")
        bias_sets = codec_cfg.get("bias_sets")
        if bias_sets is not None:  # one file per checkpoint: each decoder has its own biases
            bias_sets = list(bias_sets) if isinstance(bias_sets, (list, ListConfig)) else [bias_sets]
            if len(bias_sets) != len(paths):
                raise ValueError(f"codec.bias_sets needs one file per checkpoint ({len(paths)}), got {len(bias_sets)}")

        def make_codec(i: int, refine: bool) -> ImageCodec:
            stored = read_checkpoint(paths[i])
            model = load_codec(paths[i], stored)
            if not isinstance(model, CompressionModel):
                raise ConfigError(f"{paths[i]} holds a lossless model: evaluate it with codec=lossless")
            refiner = build_refiner(refiner_cfg, stored, paths[i]) if refine and refiner_cfg else None
            learned = LearnedCodec(model, device, latent_refiner=refiner)
            if refine and learned.aux_loss_before > AUX_LOSS_CONVERGED:
                message = (
                    f"{paths[i]}: the entropy bottlenecks' quantiles were not converged (aux loss "
                    f"{learned.aux_loss_before:.4g}); converged before coding ({learned.aux_loss:.2g}), sender "
                    "and receiver alike. Train longer or check the aux optimizer."
                )
                warnings.warn(message, stacklevel=2)
                log.warning(message)
            return (
                BiasSetCodec(learned, read_tensor_file(bias_sets[i], "codec.bias_sets file")) if bias_sets else learned
            )

        return [
            RatePoint(f"rate_point_{i}", make_codec(i, True), make_codec(i, False), checkpoint=str(p))
            for i, p in enumerate(paths)
        ]
    if codec_cfg.kind == "conventional":
        for key in ("ladder", "scales"):
            if not isinstance(codec_cfg.get(key), (list, ListConfig)) or not codec_cfg[key]:
                raise ConfigError(f"codec.{key} must be a non-empty list, got {codec_cfg.get(key)!r}")
        postfilter = codec_cfg.get("postfilter")
        bank = load_filter_bank(postfilter.ckpt_path) if postfilter else None
        filter_task = (
            instantiate(postfilter.task) if postfilter and postfilter.get("task") else None
        )  # one for all rate points
        points = []
        for scale in codec_cfg.scales:
            for value in codec_cfg.ladder:
                codec = ScaledCodec(build_ladder_codec(codec_cfg, value), scale)
                if bank is not None:
                    codec = with_postfilter(codec, bank, postfilter, value, device, filter_task)
                codec = SealedCodec(codec)
                points.append(RatePoint(codec.name, codec, codec, scale=float(scale)))
        return points
    raise ConfigError(f"codec.kind must be 'learned', 'conventional' or 'lossless', got {codec_cfg.kind!r}")


def build_refiner(cfg: DictConfig, checkpoint: dict, path: str):
    """codec.latent_refiner for one checkpoint; distortion_weight: null takes the λ that checkpoint was
    trained with, so one config serves a whole ladder of rate points."""
    if cfg.get("distortion_weight", 0.0) is not None:
        return instantiate(cfg)
    module = stored_config(checkpoint, path).get("module", {})
    weight = module.get("loss", {}).get("distortion_weight")
    if module.get("distortion", "mse") != "mse":  # the refiner's D is MSE: another D's λ means nothing
        weight = None
    if not isinstance(weight, (int, float)):
        raise ConfigError(
            "codec.latent_refiner.distortion_weight=null takes the checkpoint's module.loss.distortion_weight "
            f"(for MSE), but {path} has none: set codec.latent_refiner.distortion_weight"
        )
    return instantiate(cfg, distortion_weight=float(weight))


def build_ladder_codec(codec_cfg: DictConfig, value) -> ImageCodec:
    """The conventional codec at one ladder value; a bad value is a ConfigError naming codec.ladder."""
    try:
        return instantiate(codec_cfg.codec, **{codec_cfg.ladder_key: value})
    except Exception as err:
        message = user_error(err)
        if message is None:
            raise
        raise ConfigError(f"codec.ladder value {value!r}: {message.removeprefix('codec.codec: ')}") from None


def with_postfilter(
    codec: ImageCodec, bank, cfg: DictConfig, qp: float, device: str, task: TaskNetwork | None = None
) -> ImageCodec:
    """Method 1 (adapt: null): per-block choice among the bank's filters (by MSE, or by the features of
    `task`); method 9 (adapt set): one filter of the bank finetuned on each image, its update in the stream."""
    if cfg.get("adapt") is None:
        return BlockFilterCodec(codec, bank, qp, cfg.block_size, cfg.objective, task, device)
    adapt = cfg.adapt
    if not 0 <= adapt.filter_index < len(bank):
        raise ValueError(
            f"codec.postfilter.adapt.filter_index={adapt.filter_index}, but the bank has {len(bank)} filters"
        )
    return AdaptedFilterCodec(
        codec,
        bank.filters[adapt.filter_index],
        qp,
        params=adapt.params,
        adam_steps=adapt.adam_steps,
        lr=adapt.lr,
        quantisation_step=adapt.quantisation_step,
        device=device,
    )
