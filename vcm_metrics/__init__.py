"""Metrics: image quality (PSNR, MS-SSIM), rate, task mAP (OpenImages protocol, COCO), classification
agreement and accuracy, BD-rate."""

from vcm_metrics.bd_rate import BDRateError, bd_quality, bd_rate
from vcm_metrics.classification import top_k_accuracy, top_k_agreement
from vcm_metrics.coco_map import evaluate_coco
from vcm_metrics.image_quality import ms_ssim, mse_255, plane_psnr, psnr, yuv_psnr
from vcm_metrics.openimages_map import evaluate_openimages
from vcm_metrics.rate import bits_from_likelihoods

__all__ = [
    "BDRateError",
    "bd_quality",
    "bd_rate",
    "bits_from_likelihoods",
    "evaluate_coco",
    "evaluate_openimages",
    "ms_ssim",
    "mse_255",
    "plane_psnr",
    "psnr",
    "top_k_accuracy",
    "top_k_agreement",
    "yuv_psnr",
]
