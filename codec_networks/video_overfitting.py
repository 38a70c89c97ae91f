"""Decoder-side multiplicative parameters overfitted per video (method 5's third idea).

The encoder tunes a model's per-channel factors (`multiplicative_parameters()`, 1.0 as trained) on
one GOP for R + λ·D with Adam (noise-quantised likelihoods, as in training), quantises them to
integer multiples of STEP around 1.0 (fixed by the format: the decoder needs no setting) and codes
the integers with the Laplace/rANS coder of the other parameter updates (codec_networks/side_info.py).
They ride as side information in the GOP's intra-frame container, so their bytes count in the rate;
LearnedVideoCodec sends them only when the real GOP file coded with them has a lower R + λ·D than
without, and a GOP without them decodes with the trained factors (exactly 1.0, no bits).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from codec_networks.padding import crop_to
from codec_networks.parameter_vectors import flatten
from codec_networks.side_info import decode_integers, encode_integers
from vcm_metrics import bits_from_likelihoods, mse_255
from vcmlab.errors import BitstreamError, ConfigError

STEP = 1 / 512  # quantisation step of the factors


@dataclass(frozen=True)
class MultiplicativeOverfitting:
    """The encoder's settings; the decoder needs none of them."""

    steps: int = 30
    lr: float = 5e-3
    distortion_weight: float = 0.013  # λ on MSE of 0..255 pixels: the trained model's (module.loss)

    def __post_init__(self):
        if self.steps < 1 or self.lr <= 0 or self.distortion_weight < 0:
            raise ConfigError(f"overfitting needs steps >= 1, a positive lr and λ >= 0: {self}")

    @torch.inference_mode(False)
    @torch.enable_grad()
    def fit(self, model, frames: list[torch.Tensor], originals: torch.Tensor) -> torch.Tensor:
        """Integer factors (q: factor = 1 + q·STEP) for the GOP `frames` (padded, (1, 3, H', W') each),
        whose unpadded originals are `originals` (T, 3, H, W) on the same device. The model is left as it was."""
        params = model.multiplicative_parameters()
        if not params:
            raise ConfigError(f"{type(model).__name__} has no multiplicative parameters: build it multiplicative=true")
        saved, was_training = [p.detach().clone() for p in params], model.training
        frames, originals = [f.clone() for f in frames], originals.clone()  # inference tensors cannot enter autograd
        height, width = originals.shape[-2:]
        pixels = originals.shape[0] * height * width
        optimizer = torch.optim.Adam(params, lr=self.lr)
        try:
            model.train()
            for p in params:
                p.requires_grad_(True)
            for _ in range(self.steps):
                out = model(frames)
                bits = sum(bits_from_likelihoods(lk) for frame in out["likelihoods"] for lk in frame.values())
                mse = torch.stack(
                    [mse_255(crop_to(x, height, width), originals[t : t + 1]) for t, x in enumerate(out["x_hat"])]
                ).mean()
                loss = bits / pixels + self.distortion_weight * mse
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return torch.round((flatten(dict(enumerate(params))) - 1.0) / STEP).long().cpu()
        finally:
            with torch.no_grad():
                for p, value in zip(params, saved):
                    p.copy_(value)
                    p.requires_grad_(False)
            model.train(was_training)

    @property
    def settings(self) -> dict:
        return {
            "multiplicative_overfitting": {
                "steps": self.steps,
                "lr": self.lr,
                "distortion_weight": self.distortion_weight,
                "quantisation_step": STEP,
            }
        }


def encode_factors(integers: torch.Tensor) -> bytes:
    return encode_integers(integers)


def decode_factors(model, data: bytes) -> torch.Tensor:
    count = sum(p.numel() for p in getattr(model, "multiplicative_parameters", list)())
    if not count:
        raise BitstreamError("the GOP carries multiplicative parameters but the model has none")
    return decode_integers(data, count)


@contextmanager
def factors_applied(model, integers: torch.Tensor) -> Iterator[None]:
    """The model with factors 1 + integers·STEP while inside; the trained ones again after."""
    params = model.multiplicative_parameters()
    expected = sum(p.numel() for p in params)
    if integers.numel() != expected:
        raise BitstreamError(f"{integers.numel()} multiplicative parameters for a model with {expected}")
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            start = 0
            for p in params:
                p.copy_(1.0 + integers[start : start + p.numel()].view_as(p).to(p) * STEP)
                start += p.numel()
        yield
    finally:
        with torch.no_grad():
            for p, value in zip(params, saved):
                p.copy_(value)
