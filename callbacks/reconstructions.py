"""Side-by-side panels of original | decoded | error for the first validation images."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import save_image


class ReconstructionPanel(pl.Callback):
    """Logs panels to W&B (when a WandbLogger is attached) and writes them as PNG into the run directory
    (<default_root_dir>/reconstructions/), so every logger setup keeps them. Error is |x̂ - x| × gain."""

    def __init__(self, max_images: int = 4, error_gain: float = 4.0):
        self.max_images = max_images
        self.error_gain = error_gain
        self._panels: list[torch.Tensor] = []
        self._captions: list[str] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._panels, self._captions = [], []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(outputs, dict) or "x_hat" not in outputs:
            return
        for i, (x, x_hat) in enumerate(zip(outputs["x"], outputs["x_hat"])):
            if len(self._panels) >= self.max_images:
                return
            error = ((x_hat - x).abs() * self.error_gain).clamp(0, 1)
            self._panels.append(torch.cat([x, x_hat, error], dim=-1).detach().float().cpu())
            name = batch["name"][i] if "name" in batch else f"{batch_idx}_{i}"
            rate = f" ({float(outputs['bpp']):.3f} bpp)" if "bpp" in outputs else ""
            self._captions.append(f"{name}: original | decoded{rate} | error×{self.error_gain:g}")

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self._panels or trainer.sanity_checking:
            return
        folder = Path(trainer.default_root_dir) / "reconstructions"
        folder.mkdir(parents=True, exist_ok=True)
        for i, panel in enumerate(self._panels):
            save_image(panel, folder / f"step{trainer.global_step:07d}_{i}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/reconstructions",
                    images=list(self._panels),
                    caption=self._captions,
                    step=trainer.global_step,
                )
