"""Method 3 in one run: NN-VVC against x265 LDP alone on the held-out clip (carphone), BD-rate on
(bpp, top-1 agreement with MobileNetV2 on the originals) and (bpp, RGB PSNR), with the IHA and the IMA
each switched off in turn, and the share of the bits that goes to the learned intra frames.

Trained here, each `--steps` on CPU: the machine codec (experiment=icm_e2e, MobileNetV2's KL term),
the IHA on its reconstructions (nnvvc_iha) and the IMA on the inter frames NN-VVC decodes with them
(nnvvc_ima). CPU budgets are smoke-sized: read each figure as what this budget buys.

    python -m benchmarks.nnvvc --steps 400 --out bench-results/nnvvc.json
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

from benchmarks import report
from vcm_metrics import BDRateError, bd_rate
from vcmlab.compose import compose_config
from vcmlab.evaluation import evaluate
from vcmlab.train import train

LADDER = (27, 32, 37, 42)


def run(out: Path, overrides: list[str], config_name: str = "train") -> dict | list[dict]:
    cfg = compose_config(overrides, out, config_name=config_name)
    result = evaluate(cfg) if config_name == "eval" else train(cfg)
    GlobalHydra.instance().clear()
    return result


def intra_share(point_dir: Path) -> float:
    with open(point_dir / "per_frame.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return sum(int(r["bytes"]) for r in rows if r["type"] == "I") / sum(int(r["bytes"]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps of each network")
    parser.add_argument("--frames", type=int, default=8, help="frames of the held-out clip (one GOP)")
    parser.add_argument("--reuse", action="store_true", help="reuse checkpoints already trained under the output")
    parser.add_argument("--out", type=Path, default=Path("bench-results/nnvvc.json"))
    args = parser.parse_args()
    root = args.out.parent / "nnvvc"
    common = ["logger=none", f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={args.steps}"]
    ladder = f"[{','.join(map(str, LADDER))}]"
    trained, seconds = {}, {}
    for name, overrides in (
        ("lic", ["experiment=icm_e2e", "callbacks.anchor_comparison=null"]),
        ("iha", ["experiment=nnvvc_iha", "data.crop_size=128"]),
        ("ima", ["experiment=nnvvc_ima", f"data.qps={ladder}", f"data.cache_dir={root / 'inter_cache'}"]),
    ):
        path = root / f"train_{name}" / "checkpoints" / "last.ckpt"
        start = time.perf_counter()
        if not (args.reuse and path.exists()):
            links = {"iha": [f"module.lic_checkpoint={trained.get('lic')}"]}
            links["ima"] = [f"data.lic_checkpoint={trained.get('lic')}", f"data.iha_checkpoint={trained.get('iha')}"]
            run(root / f"train_{name}", [*overrides, *common, *links.get(name, [])])
        trained[name], seconds[name] = path, round(time.perf_counter() - start, 1)

    held_out = ["data=video_sample", f"data.val_clip_length={args.frames}", f"codec.intra_period={args.frames}"]
    held_out += ["task=mobilenet_v2", f"codec.ladder={ladder}"]
    nnvvc = ["codec=nnvvc", f"codec.lic_ckpt_paths=[{trained['lic']}]"]
    variants = {
        "NN-VVC (IHA + IMA)": [f"codec.iha_checkpoint={trained['iha']}", f"codec.ima_checkpoint={trained['ima']}"],
        "no IHA": [f"codec.ima_checkpoint={trained['ima']}"],
        "no IMA": [f"codec.iha_checkpoint={trained['iha']}"],
        "no adapters": [],
    }
    rd, shares = {}, {}
    for i, (name, overrides) in enumerate(variants.items()):
        rd[name] = run(root / f"eval_{i}", [*held_out, *nnvvc, *overrides], "eval")
        shares[name] = [round(intra_share(root / f"eval_{i}" / s["name"]), 3) for s in rd[name]]
    rd["x265 LDP"] = run(root / "eval_x265", [*held_out, "codec=hevc_ldp"], "eval")

    def bd(test: list[dict], metric: str) -> float | None:
        anchor = rd["x265 LDP"]
        try:
            return bd_rate(
                [s["bpp"] for s in anchor],
                [s[metric] for s in anchor],
                [s["bpp"] for s in test],
                [s[metric] for s in test],
            )
        except BDRateError:
            return None

    def fmt(value: float | None) -> str:
        return "n/a (curves do not overlap)" if value is None else f"{value:+.1f}%"

    results = {
        "steps": args.steps,
        "train_seconds": seconds,
        "checkpoints": {k: str(v) for k, v in trained.items()},
        "rd": rd,
        "intra_bit_share": shares,
        "bd_rate_vs_x265": {
            name: {m: bd(points, m) for m in ("top1_agreement", "psnr")}
            for name, points in rd.items()
            if name != "x265 LDP"
        },
    }
    lines = [
        f"| carphone, first {args.frames} frames (one GOP), x265 QP {LADDER} | BD-rate top-1 | BD-rate PSNR "
        "| intra share of bits |",
        "|---|---|---|---|",
    ]
    for name, value in results["bd_rate_vs_x265"].items():
        lines.append(f"| {name} | {fmt(value['top1_agreement'])} | {fmt(value['psnr'])} | {shares[name]} |")
    lines += ["", "| rate points (bpp, top-1 agreement, PSNR dB) | |", "|---|---|"]
    for name, points in rd.items():
        lines.append(
            f"| {name} | "
            + "; ".join(f"{p['bpp']:.3f}, {p['top1_agreement']:.2f}, {p['psnr']:.2f}" for p in points)
            + " |"
        )
    results["table"] = "\n".join(lines) + f"\n\n{args.steps} training steps each; seconds: {seconds}"
    report(results, args.out)


if __name__ == "__main__":
    main()
