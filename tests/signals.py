"""A callback for the preemption test: the process sends itself SIGTERM, as a cluster would."""

import os
import signal

import pytorch_lightning as pl


class SigtermAtStep(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)
