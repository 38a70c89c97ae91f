"""Rebuilding a trained codec from a vcmlab checkpoint, without trusting pickles."""
from __future__ import annotations

from pathlib import Path

import torch
from compressai.models import CompressionModel
from hydra.utils import instantiate
from omegaconf import OmegaConf


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {path} (weights_only=True): {err}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def load_codec(path: str | Path) -> CompressionModel:
    """The codec network of a vcmlab training checkpoint, built from the config stored inside it."""
    checkpoint = read_checkpoint(path)
    config = checkpoint.get("vcmlab_config")
    if not config or "model" not in config:
        raise ValueError(f"{path} has no vcmlab_config: was it written by vcm-train?")
    codec = instantiate(OmegaConf.create(config["model"]))
    state = {k[len("codec."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("codec.")}
    try:
        codec.load_state_dict(state)  # CompressionModel resizes its CDF buffers first
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not match its model config: {str(err).splitlines()[0]}") from None
    return codec


def load_codec_weights(codec: CompressionModel, checkpoint: str | Path) -> None:
    """The codec.* weights of a vcm-train checkpoint into an already built codec of the same config
    (phase-2 procedures: MAML, adversarial finetuning)."""
    state = {k[len("codec."):]: v for k, v in read_checkpoint(checkpoint)["state_dict"].items() if k.startswith("codec.")}
    try:
        codec.load_state_dict(state)  # CompressionModel resizes its CDF buffers first
    except RuntimeError as err:
        raise ValueError(f"codec_checkpoint {checkpoint} does not fit the configured model: {str(err).splitlines()[1:3]}") from None


def load_filter_bank(path: str | Path):
    """The post-filter bank of a vcm-train post-filter checkpoint (experiment competitive_filters or
    bias_finetune), usage prior included."""
    checkpoint = read_checkpoint(path)
    config = (checkpoint.get("vcmlab_config") or {}).get("module") or {}
    if "filters" not in config:
        raise ValueError(f"{path} is not a post-filter checkpoint (its config has no module.filters); train one with experiment=competitive_filters")
    bank = instantiate(OmegaConf.create(config["filters"]))
    state = {k[len("filters."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("filters.")}
    try:
        bank.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not match its filter config: {str(err).splitlines()[0]}") from None
    return bank
