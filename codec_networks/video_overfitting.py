"""Decoder-side multiplicative parameters overfitted per video (method 5's third idea).

The encoder tunes a model's per-channel factors (`multiplicative_parameters()`, 1.0 as trained) on
one GOP for R + λ·D with Adam (noise-quantised likelihoods, as in training), quantises them to
integer multiples of a step 2^-k around 1.0 and codes k (one byte) and the integers with the
Laplace coder of the other parameter updates (codec_networks/side_info.py). They ride as side
information in the GOP's intra-frame container, so their bytes count in the rate. LearnedVideoCodec
codes the GOP with each candidate step and keeps whichever real file (or none) has the lowest
R + λ·D; a GOP without factors decodes with the trained ones (exactly 1.0, no bits).
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

MAX_EXPONENT = 16  # steps from 1 down to 2^-16


@dataclass(frozen=True)
class MultiplicativeOverfitting:
    """The encoder's settings; the decoder needs none of them."""

    steps: int = 30
    lr: float = 5e-3
    distortion_weight: float = 0.013  # λ on MSE of 0..255 pixels: the trained model's (module.loss)
    exponents: tuple[int, ...] = (5, 7, 9)  # candidate quantisation steps 2^-k: 1/32, 1/128, 1/512

    def __post_init__(self):
        if self.steps < 1 or self.lr <= 0 or self.distortion_weight < 0:
            raise ConfigError(f"overfitting needs steps >= 1, a positive lr and λ >= 0: {self}")
        if not self.exponents or any(not 0 <= k <= MAX_EXPONENT for k in self.exponents):
            raise ConfigError(f"overfitting exponents must be in 0..{MAX_EXPONENT}, got {self.exponents}")

    @torch.inference_mode(False)
    @torch.enable_grad()
    def fit(self, model, frames: list[torch.Tensor], originals: torch.Tensor) -> torch.Tensor:
        """The factors, flat, tuned on the GOP `frames` (padded, (1, 3, H', W') each) whose unpadded
        originals are `originals` (T, 3, H, W) on the same device. The model is left as it was."""
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
            return flatten(dict(enumerate(params))).cpu()
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
                "quantisation_steps": [f"2^-{k}" for k in self.exponents],
            }
        }


def quantise(factors: torch.Tensor, exponent: int) -> torch.Tensor:
    return torch.round((factors - 1.0) * 2.0**exponent).long()


def encode_factors(integers: torch.Tensor, exponent: int) -> bytes:
    return bytes([exponent]) + encode_integers(integers)


def decode_factors(model, data: bytes) -> tuple[torch.Tensor, int]:
    """(integers, exponent k of the step 2^-k) of a GOP's side information."""
    count = sum(p.numel() for p in getattr(model, "multiplicative_parameters", list)())
    if not count:
        raise BitstreamError("the GOP carries multiplicative parameters but the model has none")
    if len(data) < 2 or data[0] > MAX_EXPONENT:
        raise BitstreamError("corrupt multiplicative parameters: bad quantisation step")
    return decode_integers(data[1:], count), data[0]


@contextmanager
def factors_applied(model, integers: torch.Tensor, exponent: int) -> Iterator[None]:
    """The model with factors 1 + integers·2^-exponent while inside; the trained ones again after."""
    params = model.multiplicative_parameters()
    expected = sum(p.numel() for p in params)
    if integers.numel() != expected:
        raise BitstreamError(f"{integers.numel()} multiplicative parameters for a model with {expected}")
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            start = 0
            for p in params:
                p.copy_(1.0 + integers[start : start + p.numel()].view_as(p).to(p) * 2.0**-exponent)
                start += p.numel()
        yield
    finally:
        with torch.no_grad():
            for p, value in zip(params, saved):
                p.copy_(value)
