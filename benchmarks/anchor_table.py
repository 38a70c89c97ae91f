"""BD-rates of the conventional anchors against HEVC on the same photos, every setting as configured.

    python -m benchmarks.anchor_table --out bench-results/anchor_table.json [--images DIR]

Each anchor is a vcm-eval run (real bitstreams, codec payload bytes as the rate); the table gives
BD-rate on RGB PSNR and on PSNR-YUV (6:1:1) against `codec=hevc`, and writes the anchors'
codec_settings next to the numbers. Default data: the two held-out sample photos (a toy set: read the
ordering, and compare runs of this script, not published figures).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from vcm_metrics.bd_rate import BDRateError, bd_rate
from vcmlab.compose import compose_config
from vcmlab.evaluation import evaluate

warnings.filterwarnings("ignore")

ANCHORS = {
    "hevc 4:2:0 8-bit": ["codec=hevc"],
    "hevc 4:2:0 10-bit": ["codec=hevc", "codec.codec.colour.bit_depth=10"],
    "hevc 4:4:4 8-bit": ["codec=hevc", "codec.codec.colour.chroma=444"],
    "av1 preset 8": ["codec=av1", "codec.codec.preset=8"],
    "av1 preset 4": ["codec=av1"],
    "webp": ["codec=webp", "codec.ladder=[95,85,70,50,30,10]"],
    "jpeg": ["codec=jpeg", "codec.ladder=[95,85,70,50,30,10]"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/anchor_table.json"))
    parser.add_argument(
        "--images", type=Path, default=None, help="a folder of images (default: the held-out sample photos)"
    )
    args = parser.parse_args(argv)
    work = args.out.parent / "anchor_table_runs"
    data = ["data=image_folder", "data.train_dir=null", f"data.test_dir={args.images}"] if args.images else []
    runs = {
        name: evaluate(compose_config([*overrides, *data], work / name.replace(" ", "_").replace(":", ""), "eval"))
        for name, overrides in ANCHORS.items()
    }
    anchor = runs["hevc 4:2:0 8-bit"]
    rows = []
    for name, summaries in runs.items():
        row = {"anchor": name, "codec_settings": summaries[0]["codec_settings"]}
        for metric in ("psnr", "psnr_yuv"):
            try:
                row[f"bd_rate_{metric}"] = bd_rate(
                    [s["bpp"] for s in anchor],
                    [s[metric] for s in anchor],
                    [s["bpp"] for s in summaries],
                    [s[metric] for s in summaries],
                )
            except BDRateError as err:
                row[f"bd_rate_{metric}"], row[f"error_{metric}"] = None, str(err)
        rows.append(row)
        cells = [
            f"{row[f'bd_rate_{m}']:+.2f}%" if row[f"bd_rate_{m}"] is not None else "n/a" for m in ("psnr", "psnr_yuv")
        ]
        print(f"| {name} | {' | '.join(cells)} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"anchor": "hevc 4:2:0 8-bit", "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
