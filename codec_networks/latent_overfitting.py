"""Latent overfitting at the encoder (methods 4 and 8): start from y = g_a(x) and take K Adam steps on
    w_r·R + w_d·D (human viewing)   or   w_r·R + w_t·L_task(T(x̂)) (+ w_d·D) (machines)
with the decoder, the entropy models and the task network frozen. Only the coded latent changes: the
bitstream format and the decoder are untouched, and nothing extra is signalled.

Quantisation surrogates for y: additive uniform noise, straight-through rounding, or stochastic Gumbel
annealing (SGA, Yang et al. 2020: a soft choice between floor and ceil whose temperature falls to a
near-hard rounding). The hyper-latent z always uses noise: it is recomputed from the final y when the
bitstream is written. Works on every model with a relaxed_forward (see `relaxed_forward`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel, MeanScaleHyperprior, ScaleHyperprior

from codec_networks.gaussian import gaussian_likelihood
from task_networks import TaskNetwork
from vcm_metrics import mse_255

Surrogate = Literal["noise", "ste", "sga"]
Quantize = Callable[[torch.Tensor], torch.Tensor]


def _quantize(v: torch.Tensor, surrogate: Surrogate, tau: float) -> torch.Tensor:
    """Differentiable stand-in for round(v)."""
    if surrogate == "noise":
        return v + torch.empty_like(v).uniform_(-0.5, 0.5)
    if surrogate == "ste":
        return v + (torch.round(v) - v).detach()
    if surrogate == "sga":
        floor = torch.floor(v)
        frac = (v - floor).clamp(1e-4, 1 - 1e-4)
        # logits of rounding down / up: closer integers are likelier, sharper as tau falls
        logits = torch.stack([-torch.atanh(frac), -torch.atanh(1 - frac)], dim=-1) / tau
        up = F.gumbel_softmax(logits, tau=tau, hard=False)[..., 1]
        return floor + up
    raise ValueError(f"surrogate must be noise, ste or sga, got {surrogate!r}")


def _hyperprior(model: ScaleHyperprior, y: torch.Tensor, quantize: Quantize):
    """CompressAI's scale and mean-scale hyperpriors; z keeps the noise surrogate (it is recomputed
    from the final y when the bitstream is written)."""
    with_means = isinstance(model, MeanScaleHyperprior)
    z = model.h_a(y if with_means else torch.abs(y))
    z_hat, z_likelihood = model.entropy_bottleneck(z, training=True)
    params = model.h_s(z_hat)
    scales, means = params.chunk(2, 1) if with_means else (params, None)
    centre = means if with_means else torch.zeros_like(y)
    y_tilde = centre + quantize(y - centre)
    y_likelihood = gaussian_likelihood(model.gaussian_conditional, y_tilde, scales, means)
    bits = -(torch.log2(y_likelihood).sum() + torch.log2(z_likelihood).sum())
    return model.g_s(y_tilde), bits


# CompressAI's classes, which cannot carry a method of ours; the project's own models define
# relaxed_forward(y, quantize) themselves (codec_networks/msp.py).
ADAPTERS: dict[type, Callable] = {ScaleHyperprior: _hyperprior}


def relaxed_forward(model: CompressionModel, y: torch.Tensor, surrogate: Surrogate, tau: float = 0.5):
    """(x_hat, bits) of the model's decoder and entropy models for latent y under the surrogate: the one
    way latent overfitting (4), latent finetuning for machines (8) and MAML (10) see any codec model."""

    def quantize(v: torch.Tensor) -> torch.Tensor:
        return _quantize(v, surrogate, tau)

    own = getattr(model, "relaxed_forward", None)
    if callable(own):
        return own(y, quantize)
    adapter = next((ADAPTERS[c] for c in type(model).__mro__ if c in ADAPTERS), None)
    if adapter is None:
        raise NotImplementedError(
            f"{type(model).__name__} has no relaxed_forward(y, quantize): latent overfitting needs one "
            f"(built in for {sorted(c.__name__ for c in ADAPTERS)} and their subclasses, and MSP models)"
        )
    return adapter(model, y, quantize)


class LatentOverfitter:
    """A latent refiner for LearnedCodec (codec.latent_refiner in vcm-eval). Weights as in training:
    w_d multiplies MSE on the 0..255 scale, w_r multiplies bits per pixel."""

    def __init__(
        self,
        steps: int = 100,
        lr: float = 1e-2,
        rate_weight: float = 1.0,
        distortion_weight: float | None = 0.013,  # None: in vcm-eval's codec config, each checkpoint's λ
        task_weight: float = 0.0,
        task: TaskNetwork | None = None,
        surrogate: Surrogate = "sga",
        sga_tau: tuple[float, float] = (0.5, 0.05),
        optimizer: Literal["adam", "normalized_gd"] = "adam",
    ):
        if distortion_weight is None:
            raise ValueError(
                "LatentOverfitter needs a distortion_weight; null is for codec.latent_refiner in vcm-eval, "
                "which takes each checkpoint's training λ"
            )
        if task_weight > 0 and task is None:
            raise ValueError("latent overfitting with task_weight > 0 needs a task network")
        _quantize(torch.zeros(1), surrogate, 1.0)  # validates the name now, not after the first image
        if optimizer not in ("adam", "normalized_gd"):
            raise ValueError(f"optimizer must be adam or normalized_gd (the MAML inner loop's step), got {optimizer!r}")
        self.steps, self.lr, self.surrogate, self.sga_tau, self.optimizer = steps, lr, surrogate, sga_tau, optimizer
        self.weights = (rate_weight, distortion_weight, task_weight)
        self.task = task

    @property
    def settings(self) -> dict:
        """What an evaluation summary states of the refiner (the λ each rate point used included)."""
        rate_w, dist_w, task_w = self.weights
        return {
            "name": type(self).__name__,
            "steps": self.steps,
            "lr": self.lr,
            "surrogate": self.surrogate,
            "optimizer": self.optimizer,
            "rate_weight": rate_w,
            "distortion_weight": dist_w,
            "task_weight": task_w,
            "task": type(self.task).__name__ if self.task is not None else None,
        }

    def tau(self, step: int) -> float:
        """SGA temperature, decaying exponentially from sga_tau[0] to sga_tau[1] over the steps."""
        start, end = self.sga_tau
        return start * math.exp(math.log(end / start) * step / max(1, self.steps - 1))

    @staticmethod
    def normalized_step(y: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
        """y − lr·g / rms(g), the RMS taken per image: a plain gradient step on a trained codec's latent
        diverged even at lr 1e-3 (a few latent elements carry gradients of hundreds); this one moves
        each image's latent by about lr per element, whatever the loss scale. Differentiable."""
        rms = grad.pow(2).mean(dim=tuple(range(1, grad.dim())), keepdim=True).sqrt()
        return y - lr * grad / (rms + 1e-12)

    def objective(self, model: CompressionModel, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        x_hat, bits = relaxed_forward(model, y, self.surrogate, self.tau(step))
        rate_w, dist_w, task_w = self.weights
        loss = rate_w * bits / (x.shape[0] * x.shape[-2] * x.shape[-1])
        if dist_w:
            loss = loss + dist_w * mse_255(x_hat, x)
        if task_w:
            loss = loss + task_w * self.task.task_loss(x_hat.clamp(0, 1), x)
        return loss

    @torch.enable_grad()
    def __call__(self, model: CompressionModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.detach().clone().requires_grad_(True)
        adam = torch.optim.Adam([y], lr=self.lr) if self.optimizer == "adam" else None
        for step in range(self.steps):
            # gradient for y only: the frozen networks accumulate nothing
            (grad,) = torch.autograd.grad(self.objective(model, x, y, step), [y])
            if adam is not None:
                y.grad = grad
                adam.step()
            else:
                y = self.normalized_step(y.detach(), grad, self.lr).requires_grad_(True)
        return y.detach()
