"""NN-VVC's rate points for vcm-eval's video mode (`codec=nnvvc`): one per x265 QP of the ladder, each
with its learned intra codec (`lic_ckpt_paths`: one checkpoint for all, or one per QP) and the IHA /
IMA adapters (checkpoints, or null for the identity). Sender and receiver are built separately from
the same files, so the receiver really rebuilds the reference on its own."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from codec_networks import LearnedCodec
from codec_networks.nnvvc import NNVVCCodec
from codec_networks.video_codec import is_video_model
from conventional_codecs.seeded_reference import SeededReferenceCodec
from vcmlab.checkpoints import load_adapter, load_codec
from vcmlab.errors import ConfigError


def build_nnvvc_rate_points(codec_cfg: DictConfig, device: str, point_type) -> list:
    ladder = codec_cfg.get("ladder")
    if not isinstance(ladder, (list, ListConfig)) or not ladder:
        raise ConfigError(f"codec.ladder must be a non-empty list of x265 QPs, got {ladder!r}")
    paths = codec_cfg.lic_ckpt_paths
    paths = list(paths) if isinstance(paths, (list, ListConfig)) else [paths]
    if len(paths) == 1:
        paths = paths * len(ladder)
    if len(paths) != len(ladder):
        raise ConfigError(
            f"codec.lic_ckpt_paths: one checkpoint or one per ladder QP ({len(ladder)}), got {len(paths)}"
        )

    def make(path, qp) -> NNVVCCodec:
        model = load_codec(path)
        if is_video_model(model):
            raise ConfigError(f"{path} holds a video codec; NN-VVC's intra codec is an image checkpoint (method 6)")
        adapters = {
            k: load_adapter(codec_cfg[k]) if codec_cfg.get(k) else None for k in ("iha_checkpoint", "ima_checkpoint")
        }
        colour = OmegaConf.to_container(codec_cfg.colour, resolve=True) if codec_cfg.get("colour") else None
        inter = SeededReferenceCodec(qp, codec_cfg.get("intra_qp", 0), codec_cfg.get("preset", "medium"), colour)
        return NNVVCCodec(
            LearnedCodec(model, device),
            inter,
            adapters["iha_checkpoint"],
            adapters["ima_checkpoint"],
            intra_period=codec_cfg.get("intra_period"),
            device=device,
            name=f"nnvvc_qp{qp}",
        )

    return [point_type(f"nnvvc_qp{qp}", make(p, qp), make(p, qp), str(p)) for p, qp in zip(paths, ladder)]
