"""A trained CompressAI model as an image codec: tensor -> bytes -> tensor, through real rANS bitstreams."""
from __future__ import annotations

import torch
from compressai.models import CompressionModel

from codec_networks.bitstream import BitstreamError, Payload, pack, unpack
from codec_networks.entropy_state import fingerprint
from codec_networks.padding import crop_to, pad_to_multiple
from vcm_metrics.rate import bits_from_likelihoods


class LearnedCodec:
    """Encoder and decoder around one CompressionModel.

    The CDF tables are built once here (update(force=True)); the model fingerprint written into each
    bitstream lets the decoder refuse streams of another model. Decoding must run on the same device
    type (and ideally the same machine type) as encoding: the hyper-decoder's floating-point output
    selects the CDFs, and CPU/GPU rounding differences can corrupt the decode (CompressAI #279, #309).
    """

    def __init__(self, model: CompressionModel, device: str | torch.device = "cpu", pad_multiple: int = 64):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model.update(force=True)
        self.pad_multiple = pad_multiple
        self.fingerprint = fingerprint(self.model)

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> bytes:
        """Code one image (3, H, W) with values in [0, 1]."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"encode expects one RGB image of shape (3, H, W), got {tuple(image.shape)}")
        height, width = image.shape[-2:]
        x = pad_to_multiple(image.to(self.device, torch.float32).unsqueeze(0), self.pad_multiple)
        out = self.model.compress(x)
        streams = tuple(level[0] for level in out["strings"])
        return pack(Payload(self.fingerprint, height, width, tuple(out["shape"]), streams))

    @torch.no_grad()
    def estimated_bits(self, image: torch.Tensor) -> float:
        """-log2 of the entropy model's likelihoods for this image: what training optimises, and the
        floor the real bitstream (rANS + container) is compared against."""
        x = pad_to_multiple(image.to(self.device, torch.float32).unsqueeze(0), self.pad_multiple)
        return float(bits_from_likelihoods(self.model(x)["likelihoods"]))

    @torch.no_grad()
    def decode(self, data: bytes) -> torch.Tensor:
        """Reconstruct the image (3, H, W) in [0, 1] from a bitstream written by `encode`."""
        payload = unpack(data)
        if payload.fingerprint != self.fingerprint:
            raise BitstreamError(
                f"bitstream was written by another model (fingerprint {payload.fingerprint.hex()}, "
                f"this decoder is {self.fingerprint.hex()}): decode with the checkpoint that encoded it"
            )
        strings = [[s] for s in payload.streams]
        out = self.model.decompress(strings, torch.Size(payload.shape))
        return crop_to(out["x_hat"].clamp(0, 1), payload.height, payload.width)[0]
