"""LightningModules: training procedures of the methods."""

from lightning_modules.adapter_training import InterAdapterModule, IntraAdapterModule
from lightning_modules.adversarial_finetune import AdversarialDecoderModule
from lightning_modules.codec_module import CodecModule
from lightning_modules.competitive_filters import CompetitiveFiltersModule
from lightning_modules.loss_weights import LossWeights, LossWeightSchedule
from lightning_modules.lossless import LosslessModule
from lightning_modules.maml import MAMLCodecModule
from lightning_modules.video_codec_module import VideoCodecModule

__all__ = [
    "AdversarialDecoderModule",
    "CodecModule",
    "CompetitiveFiltersModule",
    "InterAdapterModule",
    "IntraAdapterModule",
    "LosslessModule",
    "LossWeightSchedule",
    "LossWeights",
    "MAMLCodecModule",
    "VideoCodecModule",
]
