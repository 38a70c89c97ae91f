"""vcm-fit-bias-sets: K decoder bias sets for a trained codec (method 10), for vcm-eval codec.bias_sets.

    vcm-fit-bias-sets --checkpoint last.ckpt [--images DIR] --k 8 --out bias_sets.pt

Overfits the decoder biases on random patches of the images (default: the sample training photos),
clusters them with k-means and saves the (K, D) tensor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from codec_networks.bias_sets import fit_bias_sets
from datamodules.image_datasets import ImageFileDataset
from datamodules.image_io import list_images
from datamodules.sample import TRAIN_IMAGES, sample_image_paths
from vcmlab.checkpoints import load_codec
from vcmlab.cli import report_user_errors


@report_user_errors("vcm-fit-bias-sets")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vcm-fit-bias-sets", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--images", type=Path, default=None, help="folder of training images (default: sample photos)")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--patches-per-image", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    paths = list_images(args.images) if args.images else sample_image_paths(TRAIN_IMAGES)
    patches = ImageFileDataset(paths, args.patch, train=True, repeats=args.patches_per_image, crop_setting="--patch")
    sets = fit_bias_sets(
        load_codec(args.checkpoint), [patches[i]["image"] for i in range(len(patches))], args.k, args.steps, args.lr
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sets, args.out)
    print(f"{len(sets)} bias sets of {sets.shape[1]} biases -> {args.out}")


if __name__ == "__main__":
    main()
