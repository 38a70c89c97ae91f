"""LightningModules: training procedures of the methods."""
from lightning_modules.codec_module import CodecModule
from lightning_modules.loss_weights import LossWeights, LossWeightSchedule

__all__ = ["CodecModule", "LossWeightSchedule", "LossWeights"]
