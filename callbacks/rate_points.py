"""Method 6 takes its rate points as checkpoints along one run: save one at each given step."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl


class RatePointCheckpoint(pl.Callback):
    """Save `rate_point_step{N}.ckpt` when global_step reaches each of `at_steps` (e.g. the ends of
    the loss schedule's stages). Called on every rank: Trainer.save_checkpoint writes on rank 0."""

    def __init__(self, at_steps: list[int], dirpath: str | None = None):
        self.at_steps = sorted({int(s) for s in at_steps})
        self.dirpath = dirpath
        self.saved: list[str] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step not in self.at_steps:
            return
        folder = Path(self.dirpath or Path(trainer.default_root_dir) / "checkpoints")
        path = folder / f"rate_point_step{step:07d}.ckpt"
        if str(path) not in self.saved:
            trainer.save_checkpoint(path)
            self.saved.append(str(path))

    def state_dict(self) -> dict:
        return {"saved": self.saved}

    def load_state_dict(self, state_dict: dict) -> None:
        self.saved = list(state_dict.get("saved", []))
