"""Training NN-VVC's intra human adapter (method 3): the IHA refines a frozen learned codec's
reconstruction into the picture x265 will predict the inter frames from, so it trains on fidelity to
the original (MSE on 0..255). Its input is exactly what the receiver decodes: the synthesis of the
rounded latent (the entropy models in eval mode, as deployed). A conditioned adapter sees the x265
QP of the inter frames, drawn per image from `qps`.
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
from lightning_modules.checkpointing import CodecCheckpointing
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
