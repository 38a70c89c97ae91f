"""What a CompressAI model's decoder sees."""

from __future__ import annotations

import torch


@torch.no_grad()
def decoder_latent(model, x: torch.Tensor) -> torch.Tensor:
    """The quantised latent that g_s receives for the (padded) batch x, exactly as at the decoder:
    the model runs in eval mode (rounding) and a pre-hook on g_s captures its input."""
    captured = {}
    handle = model.g_s.register_forward_pre_hook(lambda module, args: captured.setdefault("y_hat", args[0]))
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        handle.remove()
        model.train(was_training)
    return captured["y_hat"]
