"""Meta-learned image compression, phase 2 (method 10, "Learning to Learn to Compress", arXiv 2007.16054).

The inner loop is latent overfitting: k gradient steps on each image's latent, y ← y − α·g/rms(g) with
g = ∇_y L (RMS-normalised per image: plain steps diverge on a trained codec), starting from y = g_a(x),
with L = w_r·R + w_d·D (+ w_t·L_task) under the noise surrogate. The outer
loop updates encoder and decoder on L after adaptation, so the codec learns to be good *after* the
encoder-side optimisation it will get at test time. Second order: the inner gradients are part of the
graph (create_graph) and the outer gradient flows through them; first order: they are constants.
Phase 1 is ordinary training: give its checkpoint as codec_checkpoint (or train from scratch here).
"""

from __future__ import annotations

import torch

from codec_networks.latent_overfitting import LatentOverfitter
from codec_networks.padding import pad_to_multiple
from lightning_modules.codec_module import CodecModule
from vcmlab.checkpoints import load_codec_weights


class MAMLCodecModule(CodecModule):
    def __init__(
        self,
        codec,
        task=None,
        *,
        inner_steps: int = 3,
        inner_lr: float = 0.03,
        second_order: bool = True,
        codec_checkpoint: str | None = None,
        **kwargs,
    ):
        super().__init__(codec, task, **kwargs)
        if codec_checkpoint is not None:
            load_codec_weights(self.codec, codec_checkpoint)
        if inner_steps < 1:
            raise ValueError("inner_steps must be at least 1 (0 is ordinary training: use module=codec)")
        self.inner_steps, self.inner_lr, self.second_order = inner_steps, inner_lr, second_order
        base = self.loss_weights.base
        # the objective of inner and outer loop, and of test-time adaptation (codec=checkpoints_lof with
        # codec.latent_refiner.optimizer=normalized_gd, lr=inner_lr, steps=inner_steps, surrogate=noise)
        self.inner_loop = LatentOverfitter(
            steps=inner_steps,
            lr=inner_lr,
            rate_weight=base.rate,
            distortion_weight=base.distortion,
            task_weight=base.task,
            task=task,
            surrogate="noise",
            optimizer="normalized_gd",
        )

    def adapt(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The inner loop; returns the adapted latent and the inner gradients (for inspection)."""
        grads = []
        for step in range(self.inner_steps):
            loss = self.inner_loop.objective(self.codec, x, y, step)
            (grad,) = torch.autograd.grad(loss, y, create_graph=self.second_order)
            if not self.second_order:
                grad = grad.detach()
            grads.append(grad)
            y = self.inner_loop.normalized_step(y, grad, self.inner_lr)
        return y, grads

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = pad_to_multiple(batch["image"], self.pad_multiple)
        y0 = self.codec.g_a(x)
        before = self.inner_loop.objective(self.codec, x, y0, 0)
        y, _ = self.adapt(x, y0)
        loss = self.inner_loop.objective(self.codec, x, y, 0)
        aux_loss = self.optimisation_step(loss)
        n = x.shape[0]
        self.log_dict(
            {
                "train/loss": loss.detach(),
                "train/loss_before_adaptation": before.detach(),
                "train/aux_loss": aux_loss.detach(),
            },
            batch_size=n,
            sync_dist=True,
        )
        self.log("train/loss_step", loss.detach(), prog_bar=True, logger=False, batch_size=n)
        return loss.detach()
