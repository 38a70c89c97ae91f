"""The identity of a model's exact state (parameters and buffers), written into its bitstreams."""

from __future__ import annotations

import hashlib

import torch


def fingerprint(model: torch.nn.Module, size: int = 4) -> bytes:
    """`size`-byte digest of every parameter and buffer: identifies the exact model that wrote a
    bitstream (4 bytes: two different models collide with probability 2^-32)."""
    digest = hashlib.blake2b(digest_size=size)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.digest()
