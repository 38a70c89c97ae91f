"""Per-image PSNR and MS-SSIM on [0, 1] images, as CompressAI's evaluation reports them."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

_MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_KERNEL = 11


def mse_255(x_hat: torch.Tensor, x: torch.Tensor, start_dim: int | None = None) -> torch.Tensor:
    """MSE of [0, 1] images on the 0..255 scale, the distortion every training objective here uses (so
    that its weight reads like CompressAI's λ): the mean over everything, or per leading index with
    the dimensions from `start_dim` on averaged. Differentiable; x broadcasts against x_hat."""
    error = (x_hat - x).pow(2)
    return (error.mean() if start_dim is None else error.flatten(start_dim).mean(start_dim)) * 255.0**2


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of a (N, C, H, W) batch (data range 1)."""
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ms_ssim(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image of a (N, C, H, W) batch, differentiable.

    The standard 5 scales need a short side of at least 161 px; smaller inputs (training crops) use as
    many scales as fit, with the standard weights renormalised.
    """
    side = min(x.shape[-2:])
    scales = next((s for s in range(5, 0, -1) if side > (_KERNEL - 1) * 2 ** (s - 1)), 0)
    if scales == 0:
        raise ValueError(f"MS-SSIM needs images of at least {_KERNEL + 1} px, got {tuple(x.shape[-2:])}")
    betas = torch.tensor(_MS_SSIM_BETAS[:scales])
    betas = tuple((betas / betas.sum()).tolist())
    return multiscale_structural_similarity_index_measure(
        x_hat.float(), x.float(), data_range=1.0, kernel_size=_KERNEL, betas=betas, reduction="none"
    )


_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def yuv_psnr(x_hat: torch.Tensor, x: torch.Tensor, matrix: str = "bt601") -> dict[str, float]:
    """Video-coding PSNR of one RGB image pair (3, H, W) in [0, 1]: both converted to Y'CbCr with
    `matrix` (full resolution, full range, float), PSNR of each component, and the 6:1:1 weighted
    average JVET reports as PSNR-YUV. Chroma spans [-0.5, 0.5], so its peak-to-peak is also 1."""
    kr, kb = _KR_KB[matrix]

    def ycbcr(rgb: torch.Tensor) -> torch.Tensor:
        r, g, b = rgb.double()
        y = kr * r + (1 - kr - kb) * g + kb * b
        return torch.stack([y, (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))])

    mse = (ycbcr(x_hat) - ycbcr(x)).pow(2).flatten(1).mean(1)
    y, u, v = (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).tolist()
    return {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}


def plane_psnr(decoded: list[np.ndarray], original: list[np.ndarray], bit_depth: int) -> dict[str, float]:
    """JVET's PSNR of one Y'CbCr frame from its stored planes [Y, Cb, Cr] (4:2:0 chroma at its own
    resolution), peak 2^bit_depth - 1, with the 6:1:1 weighted PSNR-YUV."""
    peak = 2**bit_depth - 1
    values = []
    for a, b in zip(decoded, original, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"plane shapes differ: {a.shape} vs {b.shape}")
        mse = max(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)), 1e-12)
        values.append(10 * np.log10(peak**2 / mse))
    y, u, v = values
    return {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}
