"""Method 5's ablation in one run: BD-rate (RGB PSNR, real bitstreams) of experiment=video_e2e with all
three ideas on and with each switched off in turn, against ScaleSpaceFlow trained for the same steps
and against x265 LDP, on the held-out clip (carphone, 176x144); the resolution adaptation, which only
acts on large frames, also on the 1280x720 clip (a training clip: no held-out clip is that large;
without overfitting, which is minutes per GOP there on a CPU); encode/decode frames per second at
1280x720 (without overfitting; its cost is reported on carphone).

Training-time switch (a second set of checkpoints): `model.attention=false`. Encoder-side switches
(the same checkpoints, vcm-eval overrides): `codec.resolution_adaptive=false`, `codec.overfitting=null`.
CPU budgets are smoke-sized: read each BD-rate as what this budget buys, not as the method's.

    python -m benchmarks.video_e2e --steps 400 --out bench-results/video_e2e.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import report
from benchmarks.video_codecs import GOP, RATE_WEIGHTS, clip_720p, run_eval, train_rate_points
from vcm_metrics import BDRateError, bd_rate

TRAINED = {  # checkpoint set -> (experiment, more vcm-train overrides)
    "e2e": ("video_e2e", []),
    "e2e_no_attention": ("video_e2e", ["model.attention=false"]),
    "ssf": ("video_ssf", []),
}


def variants(steps: int) -> dict[str, tuple[str, list[str]]]:
    """Evaluated variant -> (checkpoint set, vcm-eval overrides)."""
    overfit = f"codec.overfitting={{steps:{steps}}}"
    return {
        "all three ideas": ("e2e", [overfit]),
        "no resolution adaptation": ("e2e", [overfit, "codec.resolution_adaptive=false"]),
        "no split-attention dense blocks": ("e2e_no_attention", [overfit]),
        "no multiplicative overfitting": ("e2e", []),
        "ScaleSpaceFlow": ("ssf", []),
    }


def bd(anchor: list[dict], test: list[dict]) -> float | None:
    try:
        return bd_rate(
            [s["bpp"] for s in anchor], [s["psnr"] for s in anchor], [s["bpp"] for s in test], [s["psnr"] for s in test]
        )
    except BDRateError:
        return None


def fmt(value: float | None) -> str:
    return "n/a (curves do not overlap)" if value is None else f"{value:+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per rate point and model")
    parser.add_argument("--weights", type=float, nargs="+", default=list(RATE_WEIGHTS), help="distortion weights λ")
    parser.add_argument("--overfit-steps", type=int, default=30, help="encoder-side Adam steps on the factors")
    parser.add_argument("--frames", type=int, default=GOP, help="frames of the held-out clip to code")
    parser.add_argument("--frames-720p", type=int, default=4, help="frames of the 1280x720 clip to code")
    parser.add_argument("--reuse", action="store_true", help="reuse checkpoints already trained under the output")
    parser.add_argument("--extra", nargs="*", default=[], help="more vcm-train overrides, for every model")
    parser.add_argument("--out", type=Path, default=Path("bench-results/video_e2e.json"))
    args = parser.parse_args()
    root = args.out.parent / "video_e2e"
    checkpoints, train_seconds = {}, {}
    for name, (experiment, overrides) in TRAINED.items():
        folder = root / f"train_{name}"
        paths = [folder / f"train_{i}" / "checkpoints" / "last.ckpt" for i in range(len(args.weights))]
        start = time.perf_counter()
        if not (args.reuse and all(p.exists() for p in paths)):
            paths, _ = train_rate_points(folder, args.steps, args.weights, [*overrides, *args.extra], experiment)
        checkpoints[name], train_seconds[name] = paths, round(time.perf_counter() - start, 1)

    def learned(name: str, data: list[str], out: Path) -> list[dict]:
        trained, overrides = variants(args.overfit_steps)[name]
        paths = ",".join(map(str, checkpoints[trained]))
        return run_eval(out, [*data, "codec=video_checkpoints", f"codec.ckpt_paths=[{paths}]", *overrides])

    held_out = ["data=video_sample", f"data.val_clip_length={args.frames}"]
    rd = {name: learned(name, held_out, root / f"rd_{i}") for i, name in enumerate(variants(0))}
    rd["x265 LDP"] = run_eval(root / "rd_x265", [*held_out, "codec=hevc_ldp", "codec.ladder=[22,27,32,37,42,47]"])
    # 1280x720 without overfitting (encoder-side Adam on 720p frames is minutes per GOP on a CPU)
    hd = ["data=video_folder", f"data.val_dir={clip_720p(root)}", "data.colour.matrix=bt601"]
    hd_points = [f"data.val_clip_length={args.frames_720p}", *hd]
    hd_rd = {
        label: learned(
            "no multiplicative overfitting", [*hd_points, f"codec.resolution_adaptive={on}"], root / f"hd_{on}"
        )
        for label, on in (("adaptation on", "true"), ("adaptation off", "false"))
    }
    speed, hd_gop = {}, [*hd, f"data.val_clip_length={GOP}"]
    for label, name in (("video_e2e", "no multiplicative overfitting"), ("ScaleSpaceFlow", "ScaleSpaceFlow")):
        trained, overrides = variants(args.overfit_steps)[name]
        point = ["codec=video_checkpoints", f"codec.ckpt_paths=[{checkpoints[trained][-1]}]", *overrides]
        (s,) = run_eval(root / "speed" / trained, [*hd_gop, *point])
        speed[label] = {k: s[k] for k in ("encode_fps", "decode_fps", "bpp", "psnr")}
    (s,) = run_eval(root / "speed" / "x265", [*hd_gop, "codec=hevc_ldp", "codec.ladder=[32]"])
    speed["x265 medium qp32"] = {k: s[k] for k in ("encode_fps", "decode_fps", "bpp", "psnr")}
    overfit_fps = [s["encode_fps"] for s in rd["all three ideas"]]

    full = rd["all three ideas"]
    results = {
        "gop": GOP,
        "steps": args.steps,
        "weights": args.weights,
        "overfit_steps": args.overfit_steps,
        "train_seconds": train_seconds,
        "checkpoints": {k: [str(p) for p in v] for k, v in checkpoints.items()},
        "rd_carphone": rd,
        "rd_1280x720": hd_rd,
        "bd_rate_vs_x265": {k: bd(rd["x265 LDP"], v) for k, v in rd.items() if k != "x265 LDP"},
        "bd_rate_vs_ssf": {
            k: bd(rd["ScaleSpaceFlow"], v) for k, v in rd.items() if k not in ("x265 LDP", "ScaleSpaceFlow")
        },
        "bd_rate_all_on_vs_ablation": {k: bd(v, full) for k, v in rd.items() if k.startswith("no ")},
        "bd_rate_adaptation_1280x720": bd(hd_rd["adaptation off"], hd_rd["adaptation on"]),
        "speed_1280x720": speed,
        "encode_fps_carphone_with_overfitting": overfit_fps,
    }
    lines = [
        f"| carphone 176x144, first {args.frames} frames, GOP {GOP} | BD-rate vs x265 LDP | vs SSF | all on vs this |",
        "|---|---|---|---|",
    ]
    for name in rd:
        if name == "x265 LDP":
            continue
        own = results["bd_rate_all_on_vs_ablation"].get(name)
        vs_ssf = results["bd_rate_vs_ssf"].get(name)
        lines.append(
            f"| {name} | {fmt(results['bd_rate_vs_x265'][name])} | {'' if name == 'ScaleSpaceFlow' else fmt(vs_ssf)} "
            f"| {fmt(own) if name.startswith('no ') else ''} |"
        )
    lines += ["", "| rate points (bpp, PSNR dB) | |", "|---|---|"]
    for name, points in rd.items():
        lines.append(f"| {name} | " + "; ".join(f"{p['bpp']:.3f}, {p['psnr']:.2f}" for p in points) + " |")
    lines += [
        "",
        f"1280x720, first {args.frames_720p} frames, no overfitting: adaptation on vs off "
        f"{fmt(results['bd_rate_adaptation_1280x720'])}",
        "",
        "carphone encode fps with overfitting: " + ", ".join(f"{v:.3f}" for v in overfit_fps),
        "",
        "| 1280x720, GOP 8 | encode fps | decode fps |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {v['encode_fps']:.3f} | {v['decode_fps']:.3f} |" for n, v in speed.items()]
    results["table"] = "\n".join(lines) + f"\n\n{args.steps} training steps per rate point; seconds: {train_seconds}"
    report(results, args.out)


if __name__ == "__main__":
    main()
