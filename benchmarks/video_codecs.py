"""Video: encode/decode frames per second of ScaleSpaceFlow on the 1280x720 bundled clip (one GOP of 8)
next to x265 and SVT-AV1 low-delay P in the same run, and the BD-rate (RGB PSNR and PSNR-YUV) of
CPU-trained SSF rate points against x265 LDP on the held-out clip (carphone), all through `vcm-eval`
(real files, decoded and measured).

SSF is trained through `experiment=video_ssf`, one run per rate weight (`--weights`), `--steps` each;
CPU budgets are smoke-sized, so read the BD-rate as what that budget buys, not as the method's. A
GPU-scale run is one override away: `--extra trainer=gpu data=video_folder data.train_dir=/vimeo90k
data.crop_size=256 --steps 500000`, or `--checkpoints` with trained files.

    python -m benchmarks.video_codecs --steps 400 --out bench-results/video_codecs.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

from benchmarks import report
from datamodules.video import sample_video_paths
from vcm_metrics import BDRateError, bd_rate
from vcmlab.compose import compose_config
from vcmlab.evaluation import evaluate
from vcmlab.train import train

warnings.filterwarnings("ignore")

GOP = 8
RATE_WEIGHTS = (0.0018, 0.0067, 0.025, 0.0932)  # distortion weights (λ, MSE on 255-scale pixels)


def run_eval(out: Path, overrides: list[str]) -> list[dict]:
    summaries = evaluate(compose_config([f"codec.intra_period={GOP}", *overrides], out, "eval"))
    GlobalHydra.instance().clear()
    return summaries


def train_rate_points(
    root: Path, steps: int, weights, extra: list[str], experiment: str = "video_ssf"
) -> tuple[list[Path], float]:
    start, paths = time.perf_counter(), []
    for i, weight in enumerate(weights):
        out = root / f"train_{i}"
        overrides = [
            f"experiment={experiment}",
            "logger=none",
            f"module.loss.distortion_weight={weight}",
            f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={steps}",
            *extra,
        ]
        train(compose_config(overrides, out))
        GlobalHydra.instance().clear()
        paths.append(out / "checkpoints" / "last.ckpt")
    return paths, time.perf_counter() - start


def clip_720p(root: Path) -> Path:
    """A folder holding the bundled 1280x720 clip (bigbuckbunny) alone, for data=video_folder."""
    clip = root / "clip_720p"
    clip.mkdir(parents=True, exist_ok=True)
    link = clip / "bigbuckbunny.mp4"
    if not link.exists():
        link.symlink_to(sample_video_paths(("bigbuckbunny.mp4",))[0])
    return clip


def speed(root: Path, checkpoint: Path) -> dict:
    """Frames per second on the first GOP of the 1280x720 clip (bigbuckbunny)."""
    data = [
        "data=video_folder",
        f"data.val_dir={clip_720p(root)}",
        f"data.val_clip_length={GOP}",
        "data.colour.matrix=bt601",
    ]
    codecs = {
        "ssf": ["codec=video_checkpoints", f"codec.ckpt_paths=[{checkpoint}]"],
        "x265 medium qp32": ["codec=hevc_ldp", "codec.ladder=[32]"],
        "svt-av1 preset8 qp43": ["codec=av1_ldp", "codec.ladder=[43]", "codec.codec.preset=8"],
    }
    results = {}
    for name, overrides in codecs.items():
        (s,) = run_eval(root / "speed" / name.split()[0], [*data, *overrides])
        results[name] = {k: s[k] for k in ("encode_fps", "decode_fps", "bpp", "psnr")}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per SSF rate point")
    parser.add_argument("--checkpoints", nargs="*", type=Path, help="trained SSF checkpoints instead of training")
    parser.add_argument("--extra", nargs="*", default=[], help="more vcm-train overrides")
    parser.add_argument("--frames", type=int, default=GOP, help="frames of the held-out clip to code")
    parser.add_argument("--out", type=Path, default=Path("bench-results/video_codecs.json"))
    args = parser.parse_args()
    root = args.out.parent / "video_codecs"
    train_s = 0.0
    checkpoints = args.checkpoints
    if not checkpoints:
        checkpoints, train_s = train_rate_points(root, args.steps, RATE_WEIGHTS, args.extra)
    held_out = ["data=video_sample", f"data.val_clip_length={args.frames}"]
    ssf = run_eval(
        root / "rd_ssf", [*held_out, "codec=video_checkpoints", f"codec.ckpt_paths=[{','.join(map(str, checkpoints))}]"]
    )
    x265 = run_eval(root / "rd_x265", [*held_out, "codec=hevc_ldp", "codec.ladder=[22,27,32,37,42,47]"])
    results = {
        "gop": GOP,
        "steps": None if args.checkpoints else args.steps,
        "train_seconds": round(train_s, 1),
        "checkpoints": [str(p) for p in checkpoints],
        "rd": {"ssf": ssf, "x265_ldp": x265},
        "speed_1280x720": speed(root, checkpoints[-1]),
    }
    rows = []
    for metric in ("psnr", "psnr_yuv"):
        try:
            value = bd_rate(
                [s["bpp"] for s in x265], [s[metric] for s in x265], [s["bpp"] for s in ssf], [s[metric] for s in ssf]
            )
            results[f"bd_rate_{metric}"] = value
            rows.append(f"| BD-rate SSF vs x265 LDP ({metric}) | {value:+.1f}% |")
        except BDRateError as err:
            results[f"bd_rate_{metric}"] = None
            rows.append(f"| BD-rate SSF vs x265 LDP ({metric}) | n/a: {err} |")
    points = "; ".join(f"{s['bpp']:.3f} bpp {s['psnr']:.1f} dB" for s in ssf)
    anchor = "; ".join(f"{s['bpp']:.3f} bpp {s['psnr']:.1f} dB" for s in x265)
    lines = ["| 1280x720, GOP 8 | encode fps | decode fps |", "|---|---|---|"]
    lines += [f"| {n} | {v['encode_fps']:.2f} | {v['decode_fps']:.2f} |" for n, v in results["speed_1280x720"].items()]
    lines += ["", f"| carphone (176x144), first {args.frames} frames | |", "|---|---|", *rows]
    lines += [f"| SSF rate points | {points} |", f"| x265 LDP points | {anchor} |"]
    budget = f"{args.steps} steps per rate point ({train_s:.0f} s)" if not args.checkpoints else "given checkpoints"
    results["table"] = "\n".join(lines) + f"\n\nSSF: {budget}"
    report(results, args.out)


if __name__ == "__main__":
    main()
