"""Training NN-VVC's adapters (method 3).

The intra human adapter (IHA) refines a frozen learned codec's reconstruction into the picture x265
will predict the inter frames from, so it trains on fidelity to the original (MSE on 0..255). Its
input is exactly what the receiver decodes: the synthesis of the rounded latent (the entropy models
in eval mode, as deployed). A conditioned adapter sees the x265 QP of the inter frames, drawn per
image from `qps`. The inter machine adapter (IMA) post-filters the decoded inter frames for the task
network (`InterAdapterModule`, on datamodules/inter_frames.py).
"""

from __future__ import annotations

import logging
import random
import warnings
from functools import partial

import pytorch_lightning as pl
import torch
from compressai.models import CompressionModel
from torch import nn

from codec_networks.latents import decoder_latent
from codec_networks.padding import crop_to, pad_multiple_for, pad_to_multiple
from lightning_modules.checkpointing import CodecCheckpointing, RunConfigCheckpointing
from lightning_modules.real_bitstreams import require_lossy_codec
from vcm_metrics import mse_255, psnr
from vcmlab.checkpoints import load_codec_weights
from vcmlab.errors import ConfigError

log = logging.getLogger(__name__)


class IntraAdapterModule(CodecCheckpointing, pl.LightningModule):
    def __init__(
        self,
        codec: CompressionModel,
        task=None,
        *,
        adapter: nn.Module,
        lic_checkpoint: str | None = None,
        qps: list[int] | tuple[int, ...] = (22, 27, 32, 37, 42),
        optimizer: partial | None = None,
        pad_multiple: int = 64,
    ):
        super().__init__()
        require_lossy_codec(codec)
        if task is not None:
            raise ConfigError("the IHA trains on fidelity: set task=none (the IMA is the task adapter)")
        if not qps:
            raise ConfigError("module.qps: give the x265 QPs the adapter will serve")
        if lic_checkpoint is not None:
            load_codec_weights(codec, lic_checkpoint)
        else:
            message = "the IHA trains on an UNTRAINED learned codec (module.lic_checkpoint is null): tests only"
            warnings.warn(message, stacklevel=2)
            log.warning(message)
        self.codec, self.task, self.adapter, self.qps = codec, None, adapter, [int(q) for q in qps]
        self.codec.requires_grad_(False)
        self.make_optimizer = optimizer or partial(torch.optim.Adam, lr=1e-4)
        self.pad_multiple = pad_multiple_for(codec, pad_multiple)

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # the deployed decoder: latents rounded, not noised
        return self

    def configure_optimizers(self):
        return self.make_optimizer(self.adapter.parameters())

    @torch.no_grad()
    def learned_reconstruction(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad_to_multiple(x, self.pad_multiple)
        return crop_to(self.codec.g_s(decoder_latent(self.codec, padded)), *x.shape[-2:]).clamp(0, 1)

    def adapt(self, decoded: torch.Tensor, qp: torch.Tensor) -> torch.Tensor:
        return self.adapter(decoded, qp) if getattr(self.adapter, "conditioned", False) else self.adapter(decoded)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = batch["image"]
        qp = torch.tensor([random.choice(self.qps) for _ in range(x.shape[0])], dtype=x.dtype, device=x.device)
        loss = mse_255(self.adapt(self.learned_reconstruction(x), qp), x)
        self.log("train/loss", loss.detach(), batch_size=x.shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        x, n = batch["image"], batch["image"].shape[0]
        decoded = self.learned_reconstruction(x)
        qp = torch.full((n,), float(self.qps[len(self.qps) // 2]), dtype=x.dtype, device=x.device)
        adapted = self.adapt(decoded, qp).clamp(0, 1)
        metrics = {
            "loss": mse_255(adapted, x),
            "psnr_lic": psnr(decoded, x).mean(),
            "psnr_iha": psnr(adapted, x).mean(),
        }
        metrics["psnr_gain"] = metrics["psnr_iha"] - metrics["psnr_lic"]
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=n, sync_dist=True)
        return {"x": x, "x_hat": adapted, "bpp": x.new_zeros(())}


class InterAdapterModule(RunConfigCheckpointing, pl.LightningModule):
    """NN-VVC's inter machine adapter: post-filters the inter frames NN-VVC decodes (batches of
    datamodules.inter_frames: image, decoded, qp) for the frozen task network,
    L = w_t·L_task(T(IMA(decoded)), T(original)) + w_d·MSE (0..255)."""

    def __init__(
        self,
        task=None,
        *,
        adapter: nn.Module,
        task_weight: float = 1.0,
        mse_weight: float = 0.0,
        optimizer: partial | None = None,
    ):
        super().__init__()
        if task_weight > 0 and task is None:
            raise ConfigError("module.task_weight > 0 needs a task network (task=...): the IMA is the machine adapter")
        if task_weight <= 0 and mse_weight <= 0:
            raise ConfigError("module.task_weight and mse_weight are both 0: the IMA would learn nothing")
        self.task, self.adapter = task, adapter
        self.weights = {"task": task_weight, "mse": mse_weight}
        self.make_optimizer = optimizer or partial(torch.optim.Adam, lr=1e-4)

    def configure_optimizers(self):
        return self.make_optimizer(self.adapter.parameters())

    def adapt(self, decoded: torch.Tensor, qp: torch.Tensor) -> torch.Tensor:
        return self.adapter(decoded, qp) if getattr(self.adapter, "conditioned", False) else self.adapter(decoded)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, decoded = batch["image"], batch["decoded"]
        adapted = self.adapt(decoded, batch["qp"].to(x.dtype))
        zero = x.new_zeros(())
        terms = {
            "task_loss": self.task.task_loss(adapted.clamp(0, 1), x) if self.task is not None else zero,
            "task_loss_decoded": self.task.task_loss(decoded, x).detach() if self.task is not None else zero,
            "mse": mse_255(adapted, x),
        }
        terms["loss"] = self.weights["task"] * terms["task_loss"] + self.weights["mse"] * terms["mse"]
        return terms | {"adapted": adapted.detach().clamp(0, 1)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch)
        n = batch["image"].shape[0]
        self.log_dict(
            {f"train/{k}": terms[k].detach() for k in ("loss", "task_loss", "mse")}, batch_size=n, sync_dist=True
        )
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        x, n = batch["image"], batch["image"].shape[0]
        terms = self.losses(batch)
        metrics = {k: terms[k] for k in ("loss", "task_loss", "task_loss_decoded", "mse")}
        metrics |= {"psnr_decoded": psnr(batch["decoded"], x).mean(), "psnr_ima": psnr(terms["adapted"], x).mean()}
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=n, sync_dist=True)
        return {"x": x, "x_hat": terms["adapted"], "bpp": x.new_zeros(())}
