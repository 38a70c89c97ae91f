"""Helpers for the state of CompressAI entropy models inside larger modules."""

from __future__ import annotations

import hashlib

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.utils import update_registered_buffers

_CDF_BUFFERS = ["_quantized_cdf", "_offset", "_cdf_length"]


def resize_entropy_buffers(model: torch.nn.Module, state_dict: dict, prefix: str = "") -> None:
    """Give the CDF buffers of `model` the sizes they have in `state_dict`.

    update() resizes these buffers, so a checkpoint saved after it does not load into a fresh model.
    CompressionModel.load_state_dict handles this, but only when called on the codec itself; a
    LightningModule holding the codec loads through nn.Module and needs this call first.
    """
    for name, module in model.named_modules():
        full = f"{prefix}{name}"
        if isinstance(module, EntropyBottleneck):
            buffers = _CDF_BUFFERS
        elif isinstance(module, GaussianConditional):
            buffers = [*_CDF_BUFFERS, "scale_table"]
        else:
            continue
        if any(f"{full}.{b}" in state_dict for b in buffers):
            update_registered_buffers(module, full, buffers, state_dict)


def fingerprint(model: torch.nn.Module, size: int = 4) -> bytes:
    """`size`-byte digest of every parameter and buffer: identifies the exact model that wrote a
    bitstream (4 bytes: two different models collide with probability 2^-32)."""
    digest = hashlib.blake2b(digest_size=size)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.digest()
