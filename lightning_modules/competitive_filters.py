"""Method 1 (arXiv 2406.12367): M content-specific post-filters for a conventional codec, trained jointly
by competitive learning; baselines: hard winner-takes-all, and independent filters on a fixed split.

Validation tiles held-out images into blocks and makes the encoder's decision per block: "no filter" or
the filter with the lowest MSE. It logs the resulting PSNR gain, each filter's MSE, and how often each
choice wins per QP; the win counts (summed over QPs) become the filter bank's prior for coding the
per-block indices.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import partial
from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from codec_networks.postfilters import FilterBank
from lightning_modules.checkpointing import RunConfigCheckpointing
from lightning_modules.competitive_assignment import Strategy, competitive_loss
from task_networks import TaskNetwork
from vcm_metrics import mse_255

Distortion = Literal["mse", "task", "mix"]
QP_SLOTS = 64  # integer QPs 0..63 (HEVC 0..51, VVC 0..63)


def texture(blocks: torch.Tensor) -> torch.Tensor:
    """(B,) mean absolute neighbour difference: the content feature of the independent baseline's split."""
    return (blocks.diff(dim=-1).abs().mean((1, 2, 3)) + blocks.diff(dim=-2).abs().mean((1, 2, 3))) / 2


def feature_distortion(task: TaskNetwork, outputs: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """(B, M) MSE between the task network's features of each filter output and of the original."""
    if not hasattr(task, "features"):
        raise ValueError(f"distortion=task needs a task network with features(); {type(task).__name__} has none")
    batch, filters = outputs.shape[:2]
    with torch.no_grad():
        reference = task.features(original)
    decoded = task.features(outputs.flatten(0, 1))
    per_level = [
        (d.unflatten(0, (batch, filters)) - r[:, None]).pow(2).flatten(2).mean(2) for d, r in zip(decoded, reference)
    ]
    return torch.stack(per_level).mean(0)


class CompetitiveFiltersModule(RunConfigCheckpointing, pl.LightningModule):
    """strategy: competitive (softmax(-D/T), T set by vcmlab.callbacks.TemperatureAnnealing), winner_takes_all,
    or independent (each block trains the filter of its texture quantile, fixed before training).

    distortion: mse (on the 0..255 scale, like the codec module's λ), task (task-feature MSE × task_scale),
    or mix (mse + task_scale · task).
    """

    def __init__(
        self,
        filters: FilterBank,
        task: TaskNetwork | None = None,
        *,
        strategy: Strategy = "competitive",
        temperature: float = 10.0,
        distortion: Distortion = "mse",
        task_scale: float = 1.0,
        optimizer: partial | None = None,
        cluster_batches: int = 32,
    ):
        super().__init__()
        if strategy not in ("competitive", "winner_takes_all", "independent"):
            raise ValueError(f"strategy must be competitive, winner_takes_all or independent, got {strategy!r}")
        if distortion not in ("mse", "task", "mix"):
            raise ValueError(f"distortion must be mse, task or mix, got {distortion!r}")
        if distortion != "mse" and task is None:
            raise ValueError(f"distortion={distortion} needs a task network (task=...)")
        self.filters, self.task = filters, task
        self.strategy, self.temperature = strategy, float(temperature)
        self.distortion, self.task_scale = distortion, task_scale
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=1e-3)
        self.cluster_batches = cluster_batches
        self.register_buffer("cluster_edges", torch.full((len(filters) - 1,), math.nan))
        self._usage: torch.Tensor | None = None  # (QP_SLOTS, M + 1) choice counts of this validation
        self._mse: dict[str, list[torch.Tensor]] = defaultdict(list)

    # -- training ---------------------------------------------------------------------------------
    def distortions(self, outputs: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """(B, M) distortion of every filter output (B, M, 3, H, W)."""
        mse = mse_255(outputs, original[:, None], start_dim=2)
        if self.distortion == "mse":
            return mse
        task = feature_distortion(self.task, outputs, original) * self.task_scale
        return task if self.distortion == "task" else mse + task

    def clusters(self, decoded: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(texture(decoded), self.cluster_edges)

    def on_fit_start(self) -> None:
        if self.strategy == "independent" and self.cluster_edges.isnan().any():
            self.cluster_edges.copy_(self._texture_quantiles())

    def _texture_quantiles(self) -> torch.Tensor:
        """Edges that split the training blocks into M equally populated texture classes."""
        values = []
        for i, batch in enumerate(self.trainer.datamodule.train_dataloader()):
            if i >= self.cluster_batches:
                break
            values.append(texture(batch["decoded"]))
        values = torch.cat(values).to(self.device)
        values = self.trainer.strategy.all_gather(values).flatten()  # the same edges on every rank
        levels = torch.arange(1, len(self.filters), device=values.device) / len(self.filters)
        return torch.quantile(values, levels)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs = self.filters(batch["decoded"], batch["qp"])
        distortions = self.distortions(outputs, batch["original"])
        clusters = self.clusters(batch["decoded"]) if self.strategy == "independent" else None
        loss, weights = competitive_loss(distortions, self.temperature, self.strategy, clusters)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/assignment_entropy", -(weights * weights.clamp_min(1e-12).log()).sum(1).mean())
        return loss

    def configure_optimizers(self):
        return self.optimizer_factory(self.filters.parameters())

    # -- validation: the encoder's per-block decision ---------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        original, decoded = batch["original"], batch["decoded"]
        outputs = self.filters(decoded, batch["qp"]).clamp(0, 1)
        candidates = torch.cat([decoded[:, None], outputs], dim=1)  # choice 0: no filter
        mse = (candidates - original[:, None]).pow(2).flatten(2).mean(2)
        best = mse.argmin(1)
        self._mse["none"].append(mse[:, 0])
        self._mse["best"].append(mse.gather(1, best[:, None])[:, 0])
        for j in range(1, mse.shape[1]):
            self._mse[f"filter_{j - 1}"].append(mse[:, j])
        if self._usage is None:  # one row per integer QP: the same shape on every rank for the reduction
            self._usage = torch.zeros(QP_SLOTS, mse.shape[1], device=self.device)
        self._usage.index_put_((batch["qp"].long(), best), torch.ones_like(best, dtype=torch.float), accumulate=True)
        chosen = candidates[torch.arange(len(best)), best]
        return {"x": original, "x_hat": chosen}

    def on_validation_epoch_start(self) -> None:
        self._usage, self._mse = None, defaultdict(list)

    def on_validation_epoch_end(self) -> None:
        if not self._mse:
            return
        reduce = self.trainer.strategy.reduce
        means = {k: reduce(torch.cat(v).mean(), reduce_op="mean") for k, v in self._mse.items()}
        for name, value in means.items():
            self.log(f"val/mse_{name}", value * 255.0**2, sync_dist=False)
        self.log("val/psnr_gain_db", 10 * torch.log10(means["none"] / means["best"]), prog_bar=True)
        per_qp = reduce(self._usage, reduce_op="sum")
        usage = {qp: per_qp[qp] for qp in per_qp.sum(1).nonzero()[:, 0].tolist()}
        total = per_qp.sum(0)
        for j, count in enumerate(total.tolist()):
            self.log(f"val/usage/{'no_filter' if j == 0 else f'filter_{j - 1}'}", count / total.sum())
        if not self.trainer.sanity_checking:
            self.filters.usage.copy_(total + 1)  # Laplace-smoothed prior of the per-block indices
            self._log_usage_histograms(usage)

    def _log_usage_histograms(self, usage: dict[int, torch.Tensor]) -> None:
        loggers = [lg for lg in self.loggers if isinstance(lg, WandbLogger)]
        if not loggers or self.trainer.global_rank != 0:
            return
        import wandb

        edges = [j - 0.5 for j in range(len(self.filters) + 2)]  # bin j = choice j (0: no filter)
        histograms = {
            f"val/filter_usage/qp{int(qp)}": wandb.Histogram(np_histogram=(c.cpu().numpy(), edges))
            for qp, c in usage.items()
        }
        for logger in loggers:
            logger.experiment.log({**histograms, "trainer/global_step": self.global_step})
