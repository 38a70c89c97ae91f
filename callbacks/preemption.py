"""Preemption: what a cluster's SIGTERM must leave behind."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException


class PreemptionCheckpoint(pl.Callback):
    """On SIGTERM, Lightning stops at the next step boundary by raising SIGTERMException, a SystemExit
    with status 0: the job would look successful and keep no state from after the last validation.
    This callback saves the state at the stop; vcm-train then exits with status 143 (128 + SIGTERM)
    and prints the resume command. (On SLURM, Lightning's own SIGUSR1 handler requeues the job.)"""

    def __init__(self, dirpath: str, filename: str = "preempted.ckpt"):
        self.path = Path(dirpath) / filename
        self.saved: Path | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)  # every rank calls it; the strategy writes on rank 0
            self.saved = self.path
