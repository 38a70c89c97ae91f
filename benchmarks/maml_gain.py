"""Does MAML (method 10) make a codec benefit more from k test-time adaptation steps than plain training?

Phase 1 trains lic_hyperprior; then, for the same number of extra steps, one copy continues plain
training and one is meta-trained (maml_l2c, first or second order). Both are evaluated on the held-out
sample photos with real bitstreams: the RD objective bpp + λ·MSE without adaptation and after k plain
gradient steps on the latent (the inner loop at test time). Gain = objective before − after.

    python -m benchmarks.maml_gain --phase1-steps 200 --extra-steps 100 --out bench-results/maml_gain.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch

from codec_networks import LearnedCodec
from codec_networks.latent_overfitting import LatentOverfitter
from datamodules import load_rgb
from datamodules.sample import VAL_IMAGES, sample_image_paths
from vcmlab.checkpoints import load_codec
from vcmlab.compose import compose_config
from vcmlab.train import train

warnings.filterwarnings("ignore")
LAMBDA = 0.013
SMALL = ["model.N=48", "model.M=64", "logger=none", "data.val_crop_size=128"]


def run(overrides: list[str], out: Path) -> Path:
    train(compose_config([*SMALL, *overrides], out))
    return out / "checkpoints" / "last.ckpt"


def objectives(ckpt: Path, images: list[torch.Tensor], steps: int, lr: float) -> dict:
    decoder = LearnedCodec(load_codec(ckpt))
    plain = LearnedCodec(load_codec(ckpt))
    adapted = LearnedCodec(
        load_codec(ckpt),
        latent_refiner=LatentOverfitter(
            steps=steps, lr=lr, distortion_weight=LAMBDA, surrogate="noise", optimizer="normalized_gd"
        ),
    )

    def objective(codec: LearnedCodec, image: torch.Tensor) -> float:
        data = codec.encode(image)
        mse = float((decoder.decode(data) - image).pow(2).mean()) * 255**2
        return 8 * len(data) / (image.shape[-2] * image.shape[-1]) + LAMBDA * mse

    before = sum(objective(plain, im) for im in images) / len(images)
    after = sum(objective(adapted, im) for im in images) / len(images)
    return {"objective_no_adaptation": before, "objective_adapted": after, "gain": before - after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase1-steps", type=int, default=200)
    parser.add_argument("--extra-steps", type=int, default=100)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--inner-lr", type=float, default=0.03)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-results/maml_gain.json"))
    args = parser.parse_args()
    images = [load_rgb(p)[:, :256, :256] for p in sample_image_paths(VAL_IMAGES)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        phase1 = run(["experiment=lic_hyperprior", f"trainer.max_steps={args.phase1_steps}"], tmp / "phase1")
        total = args.phase1_steps + args.extra_steps
        plain = run(["experiment=lic_hyperprior", f"trainer.max_steps={total}", f"ckpt_path={phase1}"], tmp / "plain")
        maml = run(
            [
                "experiment=maml_l2c",
                f"trainer.max_steps={args.extra_steps}",
                f"module.codec_checkpoint={phase1}",
                f"module.inner_steps={args.inner_steps}",
                f"module.inner_lr={args.inner_lr}",
                f"module.second_order={not args.first_order}",
                "module.optimizer.lr=1e-3",
            ],
            tmp / "maml",
        )
        results = {
            name: objectives(ckpt, images, args.inner_steps, args.inner_lr)
            for name, ckpt in (("plain", plain), ("maml", maml))
        }
    report = {
        "benchmark": "maml_gain",
        "phase1_steps": args.phase1_steps,
        "extra_steps": args.extra_steps,
        "inner_steps": args.inner_steps,
        "inner_lr": args.inner_lr,
        "second_order": not args.first_order,
        "results": results,
        "maml_benefits_more": results["maml"]["gain"] > results["plain"]["gain"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
