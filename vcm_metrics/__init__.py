"""Metrics: image quality (PSNR, MS-SSIM) and rate."""
from vcm_metrics.image_quality import ms_ssim, psnr
from vcm_metrics.rate import bits_from_likelihoods

__all__ = ["bits_from_likelihoods", "ms_ssim", "psnr"]
