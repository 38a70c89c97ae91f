"""Temperature annealing for competitive post-filter training (method 1): T goes from `start` (every
filter learns from every block) to `end` (winner takes all) over `steps` optimizer steps.

schedule: exponential (geometric interpolation), linear, or step (T × factor every `every` steps,
never below `end`). T is a function of the global step only, so resuming restores it exactly.
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl


class TemperatureAnnealing(pl.Callback):
    def __init__(
        self,
        start: float = 10.0,
        end: float = 0.01,
        schedule: Literal["exponential", "linear", "step"] = "exponential",
        steps: int | None = None,
        every: int = 100,
        factor: float = 0.5,
    ):
        if schedule not in ("exponential", "linear", "step"):
            raise ValueError(f"schedule must be exponential, linear or step, got {schedule!r}")
        if not start >= end > 0:
            raise ValueError(f"temperatures must satisfy start >= end > 0, got start={start}, end={end}")
        self.start, self.end, self.schedule = float(start), float(end), schedule
        self.steps, self.every, self.factor = steps, every, factor

    def temperature(self, step: int, total: int) -> float:
        if self.schedule == "step":
            return max(self.end, self.start * self.factor ** (step // self.every))
        progress = min(1.0, step / max(1, total))
        if self.schedule == "linear":
            return self.start + (self.end - self.start) * progress
        return self.start * (self.end / self.start) ** progress

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        total = self.steps or trainer.max_steps
        if total is None or total < 0:
            raise ValueError("TemperatureAnnealing needs `steps` when the trainer has no max_steps")
        pl_module.temperature = self.temperature(trainer.global_step, total)
        pl_module.log("train/temperature", pl_module.temperature)
