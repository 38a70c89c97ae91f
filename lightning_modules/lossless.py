"""Training the lossless MSP model (method 7) on bits per sub-pixel, validated on real bitstreams."""

from __future__ import annotations

import time
from functools import partial
from typing import Literal

import pytorch_lightning as pl
import torch

from codec_networks.lossless_msp import ORDERS, LosslessMSP
from lightning_modules.checkpointing import RunConfigCheckpointing
from vcmlab.errors import BitstreamError, ConfigError


def to_values(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] (the datamodules' batches) -> their 8-bit values 0..255 as uint8."""
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


class LosslessModule(RunConfigCheckpointing, pl.LightningModule):
    """Minimises bpsp, the model's bits per sub-pixel (bits / (C·H·W)), of 8-bit training crops.

    Training codes in `order` (with `random`, a new permutation seed every step, so that every
    sub-step predictor learns every position group). Validation logs the model's bpsp (`bpsp_est`) and,
    with real_bitstreams, codes every image with the entropy coder, decodes it back and checks it byte
    for byte: `bpsp` then counts every byte of the file, container included. A decode that differs is
    a broken codec, not a metric: it raises.
    """

    def __init__(
        self,
        codec: LosslessMSP,
        task=None,
        *,
        optimizer: partial | None = None,
        scheduler: partial | None = None,
        scheduler_interval: Literal["step", "epoch"] = "epoch",
        clip_grad_norm: float | None = 1.0,
        order: Literal["default", "random", "entropy"] = "default",
        real_bitstreams: bool = True,
    ):
        super().__init__()
        if task is not None:
            raise ConfigError("lossless coding has no machine task: set task=none")
        if not isinstance(codec, LosslessMSP):
            raise ConfigError(f"module=lossless trains a LosslessMSP model (model=lossless_msp), got {type(codec)}")
        if order not in ORDERS:
            raise ConfigError(f"module.order must be one of {ORDERS}, got {order!r}")
        self.codec, self.task = codec, None
        self.make_optimizer = optimizer or partial(torch.optim.Adam, lr=1e-3)
        self.make_scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.clip_grad_norm = clip_grad_norm
        self.order = order
        self.real_bitstreams = real_bitstreams

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.codec.parameters())
        if self.make_scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.make_scheduler(optimizer),
                "interval": self.scheduler_interval,
                "monitor": "val/bpsp",
            },
        }

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.clip_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.clip_grad_norm, gradient_clip_algorithm="norm")

    def bpsp(self, values: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return self.codec(values, self.order, seed) / values.numel()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        values = to_values(batch["image"])
        bpsp = self.bpsp(values, seed=self.global_step)
        n = values.shape[0]
        self.log("train/bpsp", bpsp.detach(), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("train/loss", bpsp.detach(), batch_size=n, sync_dist=True)  # the objective is the rate
        return bpsp

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: dict, stage: str) -> None:
        values = to_values(batch["image"])
        n = values.shape[0]
        metrics = {"bpsp_est": self.bpsp(values)}
        if self.real_bitstreams:
            bits, encode_s, decode_s = 0, 0.0, 0.0
            for i, image in enumerate(values.cpu()):
                start = time.perf_counter()
                data = self.codec.encode(image, self.order, seed=i)
                encoded = time.perf_counter()
                decoded = self.codec.decode(data)
                encode_s, decode_s = encode_s + encoded - start, decode_s + time.perf_counter() - encoded
                if not torch.equal(decoded, image):
                    name = batch["name"][i] if "name" in batch else str(i)
                    raise BitstreamError(f"{stage} image {name}: the decoded image differs from the input")
                bits += 8 * len(data)
            metrics |= {"bpsp": bits / values.numel(), "encode_s": encode_s / n, "decode_s": decode_s / n}
        else:
            metrics["bpsp"] = metrics["bpsp_est"]
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, batch_size=n, sync_dist=True)
