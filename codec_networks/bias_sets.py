"""Decoder bias sets (method 10): overfit the synthesis transform's biases on training patches, cluster
them with k-means into K sets; at encode time the encoder picks the set that decodes the image best
and signals its index as side information (one byte, counted in the rate); the decoder loads it.

Candidate 0 is always the trained biases, so a bias set can never make an image worse than the plain
codec; candidates 1..K are the cluster centres.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.func import functional_call

from codec_networks.latents import decoder_latent
from codec_networks.learned_codec import LearnedCodec
from codec_networks.padding import crop_to, pad_to_multiple
from codec_networks.parameter_vectors import flatten, unflatten
from vcmlab.errors import BitstreamError


def decoder_biases(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.g_s.named_parameters() if n.endswith("bias")}


@torch.enable_grad()
def overfit_biases(
    model, image: torch.Tensor, steps: int = 50, lr: float = 1e-3, pad_multiple: int = 64
) -> torch.Tensor:
    """The g_s biases that minimise the MSE of one image (3, H, W) with everything else fixed."""
    x = pad_to_multiple(image[None].float(), pad_multiple)
    y_hat = decoder_latent(model, x)
    biases = {n: b.detach().clone().requires_grad_(True) for n, b in decoder_biases(model).items()}
    optimizer = torch.optim.Adam(biases.values(), lr=lr)
    for _ in range(steps):
        x_hat = functional_call(model.g_s, biases, (y_hat,), strict=False)
        loss = F.mse_loss(crop_to(x_hat, *image.shape[-2:]), image[None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return flatten(biases)


def kmeans(vectors: torch.Tensor, k: int, iterations: int = 50, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; returns the (k, D) centres."""
    if len(vectors) < k:
        raise ValueError(f"k-means with k={k} needs at least {k} vectors, got {len(vectors)}")
    generator = torch.Generator().manual_seed(seed)
    centres = [vectors[torch.randint(len(vectors), (1,), generator=generator)].squeeze(0)]
    for _ in range(1, k):
        d2 = torch.cdist(vectors, torch.stack(centres)).min(1).values.pow(2)
        centres.append(vectors[torch.multinomial(d2 / d2.sum(), 1, generator=generator)].squeeze(0))
    centres = torch.stack(centres)
    for _ in range(iterations):
        assign = torch.cdist(vectors, centres).argmin(1)
        updated = torch.stack([vectors[assign == j].mean(0) if (assign == j).any() else centres[j] for j in range(k)])
        if torch.allclose(updated, centres):
            break
        centres = updated
    return centres


def fit_bias_sets(model, patches: list[torch.Tensor], k: int, steps: int = 50, lr: float = 1e-3) -> torch.Tensor:
    """K bias sets from per-patch overfitted biases: (K, D), D = number of g_s bias entries."""
    return kmeans(torch.stack([overfit_biases(model, p, steps, lr) for p in patches]), k)


class BiasSetCodec:
    """A LearnedCodec whose decoder biases are chosen per image from a few signalled sets."""

    def __init__(self, codec: LearnedCodec, bias_sets: torch.Tensor):
        trained = flatten(decoder_biases(codec.model))
        if bias_sets.dim() != 2 or bias_sets.shape[1] != trained.numel():
            raise ValueError(
                f"bias sets of shape {tuple(bias_sets.shape)} do not fit this decoder ({trained.numel()} biases)"
            )
        if len(bias_sets) > 255:
            raise ValueError("at most 255 bias sets (one-byte index, 0 = trained biases)")
        self.codec = codec
        self.candidates = torch.cat([trained[None], bias_sets.to(trained)])
        self.name = f"{getattr(codec, 'name', 'learned')}_bias{len(bias_sets)}"

    @contextmanager
    def _biases(self, index: int):
        params = decoder_biases(self.codec.model)
        saved = flatten(params)
        with torch.no_grad():
            for p, v in zip(params.values(), unflatten(self.candidates[index], params).values()):
                p.copy_(v)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(params.values(), unflatten(saved, params).values()):
                    p.copy_(v)

    @torch.no_grad()
    def choose(self, image: torch.Tensor) -> int:
        """The candidate whose biases decode this image with the lowest MSE."""
        x = pad_to_multiple(image[None].to(self.codec.device, torch.float32), self.codec.pad_multiple)
        y_hat = decoder_latent(self.codec.model, x)
        params = decoder_biases(self.codec.model)
        errors = []
        for vector in self.candidates:
            x_hat = functional_call(self.codec.model.g_s, unflatten(vector, params), (y_hat,), strict=False)
            errors.append(
                F.mse_loss(crop_to(x_hat.clamp(0, 1), *image.shape[-2:]), x[..., : image.shape[-2], : image.shape[-1]])
            )
        return int(torch.stack(errors).argmin())

    def encode(self, image: torch.Tensor) -> bytes:
        return self.codec.encode(image, side_info=bytes([self.choose(image)]))

    @property
    def settings(self) -> dict:
        return self.codec.settings | {"bias_sets": len(self.candidates) - 1}

    def payload_bytes(self, data: bytes) -> int:
        return self.codec.payload_bytes(data)

    def decode(self, data: bytes) -> torch.Tensor:
        side = self.codec.side_info(data)
        if len(side) != 1 or side[0] >= len(self.candidates):
            raise BitstreamError(
                f"bitstream carries bias-set side info {side!r}; this decoder has {len(self.candidates)} candidates"
            )
        with self._biases(side[0]):
            return self.codec.decode(data)
