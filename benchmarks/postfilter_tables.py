"""The comparison tables of methods 1 and 9, from real HEVC bitstreams with the side information in them.

Method 1: filter banks trained with the joint (competitive) strategy and the independent baseline (and
winner-takes-all), each evaluated with per-block choices; BD-rate of HEVC+filters against HEVC alone.
Method 9: one trained filter used as trained, finetuned bias-only, and fully finetuned per image:
PSNR gain, update size, BD-rate and encoder time.

    python -m benchmarks.postfilter_tables --steps 400 --out bench-results/postfilter_tables.json

Defaults are CPU-sized (small filters, the sample photos, HEVC 'fast'). The mAP column needs annotated
data and real task weights: --eval-overrides data=openimages task=faster_rcnn task.checkpoint=... adds
`map` to the metrics (--metrics psnr map).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np

from vcm_metrics.bd_rate import BDRateError, bd_rate
from vcmlab.compose import compose_config
from vcmlab.evaluation import evaluate
from vcmlab.train import train

warnings.filterwarnings("ignore")


def train_bank(strategy: str, filters: int, args, out: Path) -> Path:
    overrides = [
        "experiment=competitive_filters" if filters > 1 else "experiment=bias_finetune",
        "logger=none",
        f"module.strategy={strategy}",
        f"module.filters.filters={filters}",
        f"trainer.max_steps={args.steps}",
        f"data.qps={args.qps}",
        f"data.codec.preset={args.preset}",
        f"data.cache_dir={args.cache}",
        *args.train_overrides,
    ]
    start = time.perf_counter()
    train(compose_config(overrides, out))
    print(f"trained {strategy} (M={filters}) in {time.perf_counter() - start:.0f}s")
    return out / "checkpoints" / "last.ckpt"


def run_eval(overrides: list[str], args, out: Path) -> list[dict]:
    cfg = compose_config(
        [f"codec.ladder={args.qps}", f"codec.codec.preset={args.preset}", *overrides, *args.eval_overrides], out, "eval"
    )
    return evaluate(cfg)


def curve(summaries: list[dict], metric: str) -> tuple[list[float], list[float]]:
    return [s["bpp"] for s in summaries], [s[metric] for s in summaries]


def bd(anchor: list[dict], test: list[dict], metric: str) -> float | None:
    try:
        return bd_rate(*curve(anchor, metric), *curve(test, metric))
    except (BDRateError, KeyError):
        return None


def update_bytes(eval_dir: Path) -> float:
    """Mean side-information bytes per image over every rate point, from the per-image CSVs."""
    sizes = []
    for path in eval_dir.glob("*/per_image.csv"):
        with open(path, newline="") as f:
            sizes += [int(row["side_info_bytes"]) for row in csv.DictReader(f)]
    return float(np.mean(sizes)) if sizes else 0.0


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--filters", type=int, default=4)
    parser.add_argument("--qps", default="[27,32,37,42]")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--adapt-steps", type=int, default=30)
    parser.add_argument("--metrics", nargs="+", default=["psnr", "ms_ssim"])
    parser.add_argument("--train-overrides", nargs="*", default=[])
    parser.add_argument("--eval-overrides", nargs="*", default=[])
    parser.add_argument("--work", type=Path, default=Path("bench-results/postfilter_work"))
    parser.add_argument("--out", type=Path, default=Path("bench-results/postfilter_tables.json"))
    args = parser.parse_args()
    args.cache = (args.work / "decode_cache").resolve()
    work = args.work.resolve()

    anchor = run_eval(["codec=hevc"], args, work / "eval_hevc")
    method1 = []
    for strategy in ("competitive", "independent", "winner_takes_all"):
        ckpt = train_bank(strategy, args.filters, args, work / f"train_{strategy}")
        summaries = run_eval(
            ["codec=hevc_postfilter", f"codec.postfilter.ckpt_path={ckpt}"], args, work / f"eval_{strategy}"
        )
        method1.append(
            {
                "strategy": strategy,
                **{f"bd_rate_{m}": bd(anchor, summaries, m) for m in args.metrics},
                "psnr_gain_db": float(np.mean([s["psnr"] - a["psnr"] for s, a in zip(summaries, anchor)])),
                "side_info_bpp": float(np.mean([s["side_info_bpp"] for s in summaries])),
                "filter_usage": {s["name"]: s["filter_usage"] for s in summaries},
            }
        )

    base = train_bank("winner_takes_all", 1, args, work / "train_single")
    method9 = []
    for params in ("none", "bias", "all"):
        summaries = run_eval(
            [
                "codec=hevc_bias_finetune",
                f"codec.postfilter.ckpt_path={base}",
                f"codec.postfilter.adapt.params={params}",
                f"codec.postfilter.adapt.adam_steps={args.adapt_steps}",
            ],
            args,
            work / f"eval_adapt_{params}",
        )
        method9.append(
            {
                "adaptation": params,
                "psnr_gain_db": float(np.mean([s["psnr"] - a["psnr"] for s, a in zip(summaries, anchor)])),
                "update_bytes": update_bytes(work / f"eval_adapt_{params}"),
                **{f"bd_rate_{m}": bd(anchor, summaries, m) for m in args.metrics},
                "encode_s": float(np.mean([s["encode_s"] for s in summaries])),
                "anchor_encode_s": float(np.mean([a["encode_s"] for a in anchor])),
            }
        )

    lines = [
        "Method 1: HEVC + filters vs HEVC alone",
        "| strategy | " + " | ".join(f"BD-rate {m}" for m in args.metrics) + " | PSNR gain | index bpp |",
        "|---|" + "---|" * (len(args.metrics) + 2),
    ]
    for row in method1:
        lines.append(
            f"| {row['strategy']} | "
            + " | ".join(fmt(row[f"bd_rate_{m}"], "+.2f") + "%" for m in args.metrics)
            + f" | {row['psnr_gain_db']:+.3f} dB | {row['side_info_bpp']:.5f} |"
        )
    lines += [
        "",
        "Method 9: one filter, adapted per image",
        "| adaptation | PSNR gain | update bytes | "
        + " | ".join(f"BD-rate {m}" for m in args.metrics)
        + " | encode s |",
        "|---|---|---|" + "---|" * (len(args.metrics) + 1),
    ]
    for row in method9:
        lines.append(
            f"| {row['adaptation']} | {row['psnr_gain_db']:+.3f} dB | {row['update_bytes']:.0f} | "
            + " | ".join(fmt(row[f"bd_rate_{m}"], "+.2f") + "%" for m in args.metrics)
            + f" | {row['encode_s']:.2f} |"
        )
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "settings": {k: str(v) for k, v in vars(args).items()},
                "method1": method1,
                "method9": method9,
                "anchor": anchor,
            },
            indent=2,
        )
        + "\n"
    )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
