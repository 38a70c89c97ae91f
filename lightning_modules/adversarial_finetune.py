"""Adversarial decoder finetuning of a trained machine codec (method 2, ICIP 2022, arXiv 2401.10732).

Only the synthesis transform g_s trains; the encoder (g_a), the hyper networks and the entropy models
stay frozen, so the bitstream of every image is unchanged, nothing extra is signalled and inference
costs nothing more. g_s minimises w_adv·L_adv(D(x̂)) + w_t·L_task(T(x̂)) + w_mse·MSE(x̂, x) (0..255
scale) against a PatchGAN discriminator D; w_adv trades the removal of checkerboard artifacts against
task accuracy.
"""

from __future__ import annotations

import logging
import warnings
from functools import partial
from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from torch import nn

from codec_networks.latents import decoder_latent
from codec_networks.padding import crop_to, pad_multiple_for, pad_to_multiple
from lightning_modules.checkpointing import CodecCheckpointing
from lightning_modules.real_bitstreams import RealBitstreamValidation, require_lossy_codec
from task_networks import TaskNetwork
from vcm_metrics import mse_255
from vcm_metrics.artifacts import checkerboard_score
from vcmlab.checkpoints import load_codec_weights

log = logging.getLogger(__name__)
GanLoss = Literal["non_saturating", "hinge", "least_squares"]


# (generator loss of D(fake), discriminator loss of D(real), D(fake)) for each GAN objective
GAN_LOSSES = {
    "non_saturating": (
        lambda fake: F.softplus(-fake).mean(),
        lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
    ),
    "hinge": (lambda fake: -fake.mean(), lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean()),
    "least_squares": (
        lambda fake: (fake - 1).pow(2).mean(),
        lambda real, fake: (real - 1).pow(2).mean() + fake.pow(2).mean(),
    ),
}


def _gan_losses(kind: GanLoss):
    if kind not in GAN_LOSSES:
        raise ValueError(f"gan_loss must be one of {', '.join(GAN_LOSSES)}, got {kind!r}")
    return GAN_LOSSES[kind]


def generator_loss(fake: torch.Tensor, kind: GanLoss) -> torch.Tensor:
    return _gan_losses(kind)[0](fake)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: GanLoss) -> torch.Tensor:
    return _gan_losses(kind)[1](real, fake)


class AdversarialDecoderModule(RealBitstreamValidation, CodecCheckpointing, pl.LightningModule):
    def __init__(
        self,
        codec: CompressionModel,
        task: TaskNetwork | None = None,
        *,
        discriminator: nn.Module,
        codec_checkpoint: str | None = None,
        gan_loss: GanLoss = "non_saturating",
        adversarial_weight: float = 0.01,
        task_weight: float = 1.0,
        mse_weight: float = 0.0,
        optimizer: partial | None = None,
        disc_optimizer: partial | None = None,
        real_bitstreams: bool = True,
        pad_multiple: int = 64,
    ):
        super().__init__()
        require_lossy_codec(codec)
        self.automatic_optimization = False
        if codec_checkpoint is not None:
            load_codec_weights(codec, codec_checkpoint)
        else:
            message = (
                "adversarial finetuning starts from an UNTRAINED codec (module.codec_checkpoint is "
                "null): fine for tests only"
            )
            warnings.warn(message, stacklevel=2)
            log.warning(message)
        if task_weight > 0 and task is None:
            raise ValueError("module.task_weight > 0 needs a task network (task=...)")
        generator_loss(torch.zeros(1), gan_loss)  # validate the name now
        self.codec, self.task, self.discriminator = codec, task, discriminator
        for name, p in self.codec.named_parameters():
            p.requires_grad_(name.startswith("g_s."))  # the decoder only: the bitstream cannot change
        self.gan_loss = gan_loss
        self.weights = {"adversarial": adversarial_weight, "task": task_weight, "mse": mse_weight}
        self.make_optimizer = optimizer or partial(torch.optim.Adam, lr=1e-5)
        self.make_disc_optimizer = disc_optimizer or partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999))
        self.real_bitstreams, self.pad_multiple = real_bitstreams, pad_multiple_for(codec, pad_multiple)

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # entropy models quantise by rounding, exactly as the deployed encoder does
        return self

    def configure_optimizers(self):
        decoder = [p for p in self.codec.parameters() if p.requires_grad]
        return [self.make_optimizer(decoder), self.make_disc_optimizer(self.discriminator.parameters())]

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad_to_multiple(x, self.pad_multiple)
        return crop_to(self.codec.g_s(decoder_latent(self.codec, padded)), *x.shape[-2:])

    def _raw_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Steps `optimizer` outside Lightning's loop. Under 16-mixed its gradients carry the GradScaler's
        scale: the scaler steps it (unscaled, skipped on inf); the next main step's update() adjusts the
        scale."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = self.optimizers()
        x, targets = batch["image"], batch.get("targets")
        x_hat = self.decode(x)

        self.toggle_optimizer(opt_g)
        adversarial = generator_loss(self.discriminator(x_hat), self.gan_loss)
        task = self.task.task_loss(x_hat.clamp(0, 1), x, targets) if self.task is not None else x.new_zeros(())
        mse = mse_255(x_hat, x)
        w = self.weights
        loss_g = w["adversarial"] * adversarial + w["task"] * task + w["mse"] * mse
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        loss_d = discriminator_loss(self.discriminator(x), self.discriminator(x_hat.detach()), self.gan_loss)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        self._raw_step(opt_d.optimizer)  # one global step per batch, not two
        self.untoggle_optimizer(opt_d)

        self.log_dict(
            {
                "train/loss": loss_g.detach(),
                "train/adversarial": adversarial.detach(),
                "train/task_loss": task.detach(),
                "train/mse": mse.detach(),
                "train/disc_loss": loss_d.detach(),
            },
            batch_size=x.shape[0],
            sync_dist=True,
        )
        return loss_g.detach()

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        x, n = batch["image"], batch["image"].shape[0]
        decoded, bpp = self.coded(x, lambda: (self.decode(x).clamp(0, 1), x.new_zeros(())))
        task = self.task.task_loss(decoded, x, batch.get("targets")) if self.task is not None else x.new_zeros(())
        metrics = {
            "bpp": bpp,
            **self.image_quality(decoded, x),
            "task_loss": task,
            "checkerboard": checkerboard_score(decoded, x).mean(),
        }
        # what the best checkpoint minimises (the experiment's monitor): the task term plus the artifact
        # score, as the method trades the two; no rate term, the bitstream does not change
        metrics["task_artifact_loss"] = self.weights["task"] * task + metrics["checkerboard"]
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=n, sync_dist=True)
        return {"x": x, "x_hat": decoded, "bpp": bpp}
