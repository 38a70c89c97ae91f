"""Encode/decode time per image and megapixels/s of every codec on the sample validation photos
(whole images), with the learned codec's actual-vs-estimated bit overhead.

    python -m benchmarks.codec_speed [--checkpoint run/checkpoints/last.ckpt] --out bench-results/codec_speed.json

Without --checkpoint the learned codec is an untrained bmshj2018-hyperprior (N=128, M=192): its speed is
representative, its rate is not.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from compressai.models import ScaleHyperprior

from codec_networks import LearnedCodec
from conventional_codecs import PillowCodec, PyAVIntraCodec
from datamodules import load_rgb
from datamodules.sample import VAL_IMAGES, sample_image_paths
from vcmlab.checkpoints import load_codec


def measure(codec, images: list[torch.Tensor], repeats: int) -> dict:
    pixels = sum(img.shape[-2] * img.shape[-1] for img in images)
    best_enc = best_dec = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        streams = [codec.encode(img) for img in images]
        best_enc = min(best_enc, time.perf_counter() - start)
        start = time.perf_counter()
        for data in streams:
            codec.decode(data)
        best_dec = min(best_dec, time.perf_counter() - start)
    result = {
        "encode_s_per_image": best_enc / len(images),
        "decode_s_per_image": best_dec / len(images),
        "encode_mpixel_per_s": pixels / 1e6 / best_enc,
        "decode_mpixel_per_s": pixels / 1e6 / best_dec,
        "bpp": 8 * sum(map(len, streams)) / pixels,
    }
    if isinstance(codec, LearnedCodec):
        estimated = sum(codec.estimated_bits(img) for img in images)
        result["bpp_estimated"] = estimated / pixels
        result["bit_overhead_percent"] = 100 * (8 * sum(map(len, streams)) / estimated - 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/codec_speed.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    images = [load_rgb(p) for p in sample_image_paths(VAL_IMAGES)]
    model = load_codec(args.checkpoint) if args.checkpoint else ScaleHyperprior(N=128, M=192)
    codecs = {
        "jpeg_q50": PillowCodec("jpeg", 50),
        "webp_q50": PillowCodec("webp", 50),
        "hevc_qp32": PyAVIntraCodec("hevc", 32),
        "av1_qp36": PyAVIntraCodec("av1", 36),
        "learned": LearnedCodec(model),
    }
    with torch.inference_mode():
        results = {name: measure(codec, images, args.repeats) for name, codec in codecs.items()}
    report = {
        "benchmark": "codec_speed",
        "images": [p.name for p in sample_image_paths(VAL_IMAGES)],
        "learned_codec": str(args.checkpoint or "untrained ScaleHyperprior(N=128, M=192)"),
        "codecs": results,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
