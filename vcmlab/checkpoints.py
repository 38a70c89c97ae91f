"""Checkpoint files: written atomically, and read back without trusting anything inside them.

The tensors are read with `torch.load(weights_only=True)` (no pickled code), and the network classes
come from the allow-list in codec_networks/registry.py, never from the stored config's `_target_`.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from compressai.models import CompressionModel
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol
from pytorch_lightning.plugins.io import TorchCheckpointIO

from codec_networks.registry import CODECS, FILTERS, build_network
from vcmlab.errors import CheckpointError


def safe_load(path: str | Path, what: str) -> Any:
    """torch.load(weights_only=True) of a file a user passed in, with errors that say what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    # torch.save's format is a zip (a truncated file loses its directory); files saved by torch < 1.6
    # (some published weights) are a bare pickle stream, which weights_only=True reads as safely
    if not zipfile.is_zipfile(path) and not _starts_like_a_pickle(path):
        raise CheckpointError(
            f"cannot read {what} {path}: truncated, corrupt or not a PyTorch checkpoint (no zip archive)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refuses to build anything but tensors and containers
        if "truncated" in str(err) or "ran out of input" in str(err).lower():
            raise CheckpointError(
                f"cannot read {what} {path}: truncated or corrupt ({str(err).splitlines()[0]})"
            ) from None
        reason = next(
            (line for line in str(err).splitlines() if "GLOBAL" in line or "Unsupported" in line),
            "objects other than tensors",
        )
        raise CheckpointError(
            f"refusing {what} {path}: it holds pickled code or objects that weights_only=True does not load "
            f"({reason.strip()})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"cannot read {what} {path}: truncated, corrupt or not a PyTorch checkpoint ({str(err).splitlines()[0]})"
        ) from None


def _starts_like_a_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict:
    """The dict of a Lightning checkpoint file; a clear error for a missing, foreign or damaged file."""
    checkpoint = safe_load(path, what)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def stored_config(checkpoint: dict, path: str | Path) -> dict:
    config = checkpoint.get("vcmlab_config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} has no vcmlab_config: was it written by vcm-train?")
    return config


def submodule_state(state_dict: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a module's state_dict under `prefix.` (e.g. codec, filters), the prefix removed."""
    return {k[len(prefix) + 1 :]: v for k, v in state_dict.items() if k.startswith(prefix + ".")}


def load_into(network: torch.nn.Module, state: dict, path: str | Path, what: str) -> None:
    try:
        network.load_state_dict(state)  # a CompressionModel resizes its CDF buffers first
    except (RuntimeError, KeyError, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CheckpointError(f"{path} does not fit {what}: {' '.join(lines[:3])}") from None


def load_codec(path: str | Path, checkpoint: dict | None = None) -> CompressionModel:
    """The codec network of a vcm-train checkpoint, rebuilt from its stored model config (`checkpoint`:
    the file's content when the caller has read it already)."""
    checkpoint = checkpoint if checkpoint is not None else read_checkpoint(path)
    config = stored_config(checkpoint, path)
    if "model" not in config:
        raise CheckpointError(f"{path} holds no learned codec (its config has no model)")
    codec = build_network(config["model"], CODECS, f"{path}: model", CheckpointError)
    load_into(codec, submodule_state(checkpoint["state_dict"], "codec"), path, "its model config")
    return codec


def load_codec_weights(codec: CompressionModel, checkpoint: str | Path) -> None:
    """The codec.* weights of a vcm-train checkpoint into an already built codec of the same config
    (phase-2 procedures: MAML, adversarial finetuning)."""
    load_into(
        codec,
        submodule_state(read_checkpoint(checkpoint, "codec_checkpoint")["state_dict"], "codec"),
        checkpoint,
        "the configured model",
    )


def load_filter_bank(path: str | Path):
    """The post-filter bank of a vcm-train post-filter checkpoint (experiment competitive_filters or
    bias_finetune), usage prior included."""
    checkpoint = read_checkpoint(path)
    module = stored_config(checkpoint, path).get("module")
    if not isinstance(module, dict) or "filters" not in module:
        raise CheckpointError(
            f"{path} is not a post-filter checkpoint (its config has no module.filters); train one with "
            "experiment=competitive_filters"
        )
    bank = build_network(module["filters"], FILTERS, f"{path}: module.filters", CheckpointError)
    load_into(bank, submodule_state(checkpoint["state_dict"], "filters"), path, "its filter config")
    return bank


def load_adapter(path: str | Path):
    """An NN-VVC adapter (IHA or IMA) of a vcm-train checkpoint whose module holds it as `adapter`."""
    checkpoint = read_checkpoint(path, "adapter checkpoint")
    module = stored_config(checkpoint, path).get("module")
    if not isinstance(module, dict) or "adapter" not in module:
        raise CheckpointError(f"{path} is not an adapter checkpoint (its config has no module.adapter)")
    adapter = build_network(module["adapter"], FILTERS, f"{path}: module.adapter", CheckpointError)
    load_into(adapter, submodule_state(checkpoint["state_dict"], "adapter"), path, "its adapter config")
    return adapter


def read_tensor_file(path: str | Path, what: str) -> torch.Tensor:
    """One floating-point tensor saved with torch.save (e.g. vcm-fit-bias-sets' output), read safely."""
    value = safe_load(path, what)
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise CheckpointError(f"{what} {path} holds {type(value).__name__}, expected a floating-point tensor")
    if not torch.isfinite(value).all():
        raise CheckpointError(f"{what} {path} contains NaN or infinite values")
    return value


def drop_foreign_callback_paths(checkpoint: dict) -> None:
    """Resume restores ModelCheckpoint's bookkeeping from the file, and ModelCheckpoint later deletes the
    files it lists (a replaced best or last). Lightning spares local files outside its directory but
    not remote ones (s3://...): keep only paths inside the callback's own directory, so a crafted
    checkpoint cannot make a resumed run delete anything else."""
    for state in (checkpoint.get("callbacks") or {}).values():
        if not isinstance(state, dict) or "dirpath" not in state:
            continue
        root = Path(str(state["dirpath"])).resolve()

        def inside(p, root=root) -> bool:
            return isinstance(p, str) and (p == "" or root in Path(p).resolve().parents)

        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state and not inside(state[key]):
                state[key] = ""
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {p: v for p, v in state["best_k_models"].items() if inside(p)}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic for local files: the bytes go to a temporary file in
    the same directory, are flushed to disk and only then renamed over the target. A full disk or a
    kill mid-write leaves the previous checkpoint (if any) intact and no partial file under a
    checkpoint name. (Lightning's own writer stages in /tmp and moves across file systems, which
    leaves a truncated file behind when the disk fills.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if not _is_local_file_protocol(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except (OSError, RuntimeError) as err:  # torch.save reports a failed write as RuntimeError
            temporary.unlink(missing_ok=True)
            cause = next((e for e in (err, err.__context__) if isinstance(e, OSError)), err)
            raise CheckpointError(
                f"cannot write checkpoint {path}: {getattr(cause, 'strerror', None) or cause}; nothing partial "
                "was left under that name" + (" and the previous file is intact" if path.exists() else "")
            ) from None
