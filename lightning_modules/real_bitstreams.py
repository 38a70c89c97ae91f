"""Validation on images decoded from real bitstreams, shared by the modules that hold a codec: one
LearnedCodec per evaluation pass (update(force=True) rebuilds the CDF tables from the current weights
and the model is fingerprinted once), bpp from the bytes written, quality of the decoded image."""

from __future__ import annotations

from collections.abc import Callable

import torch
from compressai.models import CompressionModel

from codec_networks import LearnedCodec
from codec_networks.video_codec import is_video_model
from vcm_metrics import ms_ssim, psnr
from vcmlab.errors import ConfigError


def require_lossy_codec(codec, video: bool = False) -> None:
    """The lossy procedures train CompressAI codecs of their kind (image or video); the lossless model
    has its own (experiment=lossless_msp)."""
    if not isinstance(codec, CompressionModel):
        raise ConfigError(
            f"this experiment trains a lossy CompressAI codec, but the model is {type(codec).__name__}; "
            "the lossless model trains with experiment=lossless_msp"
        )
    if video != is_video_model(codec):
        kind = "video codec (model=ssf or video_e2e)" if video else "image codec"
        raise ConfigError(
            f"this experiment trains a lossy {kind}, but the model is {type(codec).__name__}: video codecs train "
            "with experiment=video_ssf or video_e2e, image codecs with the image experiments"
        )


class RealBitstreamValidation:
    """For LightningModules with `codec`, `real_bitstreams` and `pad_multiple`."""

    _bitstream_codec: LearnedCodec | None = None

    def on_validation_epoch_start(self) -> None:
        self._start_bitstream_codec()

    def on_test_epoch_start(self) -> None:
        self._start_bitstream_codec()

    def _start_bitstream_codec(self) -> None:
        self._bitstream_codec = (
            LearnedCodec(self.codec, self.device, self.pad_multiple) if self.real_bitstreams else None
        )

    def coded(
        self, x: torch.Tensor, stand_in: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoded batch, bpp from the bytes) through the entropy coder in fp32 (also under mixed
        precision), or `stand_in()` (a forward pass) when real_bitstreams is off."""
        if self._bitstream_codec is None:
            return stand_in()
        with torch.autocast(x.device.type, enabled=False):  # coded in fp32, as vcm-eval will code it
            return self._bitstream_codec.round_trip(x.float())

    @staticmethod
    def image_quality(decoded: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"psnr": psnr(decoded, x).mean(), "ms_ssim": ms_ssim(decoded, x).mean()}
