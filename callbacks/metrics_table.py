"""One row per validation epoch with every validation metric: a W&B table and a CSV in the run dir."""

from __future__ import annotations

import csv
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only


class MetricsTable(pl.Callback):
    def __init__(self, prefix: str = "val/"):
        self.prefix = prefix
        self.rows: list[dict] = []

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith(self.prefix)}
        if not metrics:
            return
        self.rows.append({"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics})
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        path = Path(trainer.default_root_dir) / "metrics_table.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                data = [[row.get(c) for c in columns] for row in self.rows]
                logger.log_table(
                    key=f"{self.prefix}metrics_table", columns=columns, data=data, step=trainer.global_step
                )

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))
