"""Training a learned image codec on rate + distortion (+ a machine task): method 6, and its human-
oriented special case (task weight 0)."""

from __future__ import annotations

from functools import partial
from typing import Literal

import pytorch_lightning as pl
import torch
from compressai.models import CompressionModel
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.profiler import record_function

from codec_networks.padding import crop_to, pad_multiple_for, pad_to_multiple
from codec_networks.precision import keep_entropy_models_fp32
from lightning_modules.checkpointing import CodecCheckpointing
from lightning_modules.loss_weights import LossWeights, LossWeightSchedule
from lightning_modules.real_bitstreams import RealBitstreamValidation, require_lossy_codec
from task_networks import TaskNetwork
from vcm_metrics import bits_from_likelihoods, ms_ssim, mse_255, psnr

Distortion = Literal["mse", "ms_ssim"]
TRANSFORMS = ("g_a", "g_s", "h_a", "h_s")  # CompressAI's analysis/synthesis names: what `compile` compiles


def distortion_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: Distortion) -> torch.Tensor:
    """MSE on the 0..255 scale (so that weights read like CompressAI's λ), or 1 - MS-SSIM."""
    if kind == "mse":
        return mse_255(x_hat, x)
    if kind == "ms_ssim":
        return 1.0 - ms_ssim(x_hat, x).mean()
    raise ValueError(f"distortion must be 'mse' or 'ms_ssim', got {kind!r}")


class CodecModule(RealBitstreamValidation, CodecCheckpointing, pl.LightningModule):
    """L = w_r·bpp + w_d·D + w_t·L_task(T(x̂)) with scheduled weights; the task network stays frozen.

    Two optimizers, stepped by hand: the main one for every codec parameter but the entropy
    bottlenecks' quantiles, CompressAI's auxiliary one for the quantiles. Validation runs the model
    forward (estimated bpp) and, with real_bitstreams, compress()/decompress() of every image (bpp from
    the bytes, PSNR/MS-SSIM of the decoded image).
    """

    codes_video = False  # VideoCodecModule: True

    def __init__(
        self,
        codec: CompressionModel,
        task: TaskNetwork | None = None,
        *,
        loss: dict | None = None,
        distortion: Distortion = "mse",
        optimizer: partial | None = None,
        aux_optimizer: partial | None = None,
        scheduler: partial | None = None,
        scheduler_interval: Literal["step", "epoch"] = "epoch",
        clip_grad_norm: float | None = 1.0,
        real_bitstreams: bool = True,
        pad_multiple: int = 64,
        compile: bool = False,
        channels_last: bool = False,
    ):
        super().__init__()
        require_lossy_codec(codec, video=self.codes_video)
        self.automatic_optimization = False
        self.codec = keep_entropy_models_fp32(codec)  # likelihoods in fp32 under mixed precision
        self.task = task
        self.loss_weights = LossWeightSchedule(**(loss or {}))
        if self.loss_weights.base.task > 0 and task is None:
            raise ValueError("module.loss.task_weight > 0 needs a task network: set task=<name>, or task weight 0")
        self.distortion = distortion
        self.make_optimizer = optimizer or partial(torch.optim.Adam, lr=1e-4)
        self.make_aux_optimizer = aux_optimizer or partial(torch.optim.Adam, lr=1e-3)
        self.make_scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.clip_grad_norm = clip_grad_norm
        self.real_bitstreams = real_bitstreams
        self.pad_multiple = pad_multiple_for(codec, pad_multiple)
        self.compile_transforms, self.channels_last = compile, channels_last

    def configure_model(self) -> None:
        """`compile`: torch.compile the analysis/synthesis transforms in place (state-dict keys, hence
        checkpoints, unchanged; the entropy models and coder stay eager). `channels_last`: NHWC weights."""
        if self.channels_last:
            self.codec.to(memory_format=torch.channels_last)
        if self.compile_transforms:
            for name in TRANSFORMS:
                if isinstance(getattr(self.codec, name, None), torch.nn.Module):
                    getattr(self.codec, name).compile()

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        named = [(n, p) for n, p in self.codec.named_parameters() if p.requires_grad]
        main = [p for n, p in named if not n.endswith(".quantiles")]
        aux = [p for n, p in named if n.endswith(".quantiles")]
        optimizers = [self.make_optimizer(main), self.make_aux_optimizer(aux)]
        if self.make_scheduler is None:
            return optimizers
        return optimizers, [self.make_scheduler(optimizers[0])]

    def losses(
        self, x: torch.Tensor, targets: list[dict] | None, w: LossWeights, with_task: bool
    ) -> dict[str, torch.Tensor]:
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.pad_multiple)
        out = self.codec(padded.contiguous(memory_format=torch.channels_last) if self.channels_last else padded)
        x_hat = crop_to(out["x_hat"], height, width)
        # bits of the padded latents are charged to the original pixels, as in the real bitstream
        bpp = bits_from_likelihoods(out["likelihoods"]) / (x.shape[0] * height * width)
        dist = distortion_loss(x_hat, x, self.distortion)
        task = x.new_zeros(())
        if with_task and self.task is not None:
            task = self.task.task_loss(x_hat.clamp(0, 1), x, targets)
        return {"loss": w.combine(bpp, dist, task), "bpp": bpp, "distortion": dist, "task_loss": task, "x_hat": x_hat}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # record_function labels: the parts of a step `make profile` reports (near free without a profiler)
        w = self.loss_weights(self.global_step)
        with record_function("vcm/forward"):
            terms = self.losses(batch["image"], batch.get("targets"), w, with_task=w.task > 0)
        aux_loss = self.optimisation_step(terms["loss"])
        n = batch["image"].shape[0]
        with record_function("vcm/logging"):
            self.log_dict(
                {f"train/{k}": terms[k].detach() for k in ("loss", "bpp", "distortion", "task_loss")}
                | {"train/aux_loss": aux_loss.detach()},
                prog_bar=False,
                batch_size=n,
                sync_dist=True,
            )
            self.log_dict(
                {"train/w_rate": w.rate, "train/w_distortion": w.distortion, "train/w_task": w.task}, batch_size=n
            )
            self.log("train/loss_step", terms["loss"].detach(), prog_bar=True, logger=False, batch_size=n)
        return terms["loss"].detach()

    def optimisation_step(self, loss: torch.Tensor) -> torch.Tensor:
        """Main step on `loss` (clipped), CompressAI's aux step, per-step scheduler; returns the aux loss."""
        opt, aux_opt = self.optimizers()
        with record_function("vcm/backward"):
            opt.zero_grad()
            self.manual_backward(loss)
        with record_function("vcm/optimizer_step"):
            opt.step()  # clipped in on_before_optimizer_step
        with record_function("vcm/aux_step"):
            aux_loss = self._aux_step(aux_opt.optimizer)
        if self.scheduler_interval == "step":
            self._step_scheduler()
        return aux_loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clips the main step's gradients. Lightning calls this inside opt.step(), after a 16-mixed
        GradScaler has unscaled them; clipping right after manual_backward, as Lightning's manual-
        optimisation example does, would clip the scaled gradients (Lightning #18089). The aux step
        bypasses Lightning's optimizer, so only the main optimizer comes here."""
        if self.clip_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.clip_grad_norm, gradient_clip_algorithm="norm")

    def _aux_step(self, aux_optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One step of CompressAI's auxiliary loss, which fits the entropy bottlenecks' quantiles.

        The aux loss depends only on the bottlenecks' own parameters, identical on every DDP rank, so its
        gradient is identical too: it is taken with autograd.grad, outside DDP's reducer (no second
        all-reduce per step) and without touching any other parameter's .grad. Stepping the raw optimizer
        keeps global_step at one per batch (LightningOptimizer.step would count a second step).
        """
        params = [p for group in aux_optimizer.param_groups for p in group["params"]]
        with torch.autocast(self.device.type, enabled=False):
            aux_loss = self.codec.aux_loss()
        for p, grad in zip(params, torch.autograd.grad(aux_loss, params)):
            p.grad = grad
        aux_optimizer.step()
        return aux_loss

    def on_train_epoch_end(self) -> None:
        if self.scheduler_interval == "epoch":
            self._step_scheduler()

    def _step_scheduler(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is None:
            return
        if isinstance(scheduler, ReduceLROnPlateau):
            metric = self.trainer.callback_metrics.get("val/rd_loss")
            if metric is not None:
                scheduler.step(metric)
        else:
            scheduler.step()

    # ----------------------------------------------------------------- evaluation
    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, "test")

    def _evaluate(self, batch: dict, stage: str) -> dict:
        """Forward-pass estimates (bpp_est, psnr_forward) next to measurements on the image decoded from
        the real bitstream (bpp from its bytes, and every other metric); without real_bitstreams the
        forward pass stands in for the decoded image."""
        x, targets, n = batch["image"], batch.get("targets"), batch["image"].shape[0]
        current, final = self.loss_weights(self.global_step), self.loss_weights.final
        forward = self.losses(x, targets, current, with_task=False)
        decoded, bpp = self.coded(x, lambda: (forward["x_hat"].clamp(0, 1), forward["bpp"]))
        dist = distortion_loss(decoded, x, self.distortion)
        task = self.task.task_loss(decoded, x, targets) if self.task is not None else x.new_zeros(())
        metrics = {
            "bpp_est": forward["bpp"],
            "psnr_forward": psnr(forward["x_hat"].clamp(0, 1), x).mean(),
            "bpp": bpp,
            **self.image_quality(decoded, x),
            "distortion": dist,
            "task_loss": task,
            "loss": current.combine(bpp, dist, task),
            # under the schedule's final weights: comparable across validations, so the best checkpoint
            # is best for the objective the run aims at, not for the weights of the moment
            "rd_loss": final.combine(bpp, dist, task),
        }
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, batch_size=n, sync_dist=True)
        return {"x": x, "x_hat": decoded, "bpp": bpp}
