"""vcm-bdrate: BD-rate of a test curve against an anchor curve.

    vcm-bdrate [--metric psnr] [--method pchip|cubic] ANCHOR TEST

Each file is a summaries.json written by vcm-eval (a list of rate points, each with "bpp" and the
metrics), or a CSV with a `bpp` column and one column per metric. The last line printed is
`BD-rate <metric> <method>: <value>%`. Exit code 2 when the curves allow no BD value.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from vcm_metrics.bd_rate import BDRateError, bd_quality, bd_rate


def read_curve(path: Path, metric: str) -> tuple[list[float], list[float]]:
    if not path.is_file():
        raise BDRateError(f"{path}: no such file")
    if path.suffix == ".json":
        points = json.loads(path.read_text())
        points = points if isinstance(points, list) else points.get("rate_points", [points])
    else:
        with open(path, newline="") as f:
            points = list(csv.DictReader(f))
    if not points:
        raise BDRateError(f"{path}: no rate points")
    missing = [key for key in ("bpp", metric) if key not in points[0]]
    if missing:
        raise BDRateError(f"{path}: no {' or '.join(missing)} column (has {sorted(points[0])})")
    return [float(p["bpp"]) for p in points], [float(p[metric]) for p in points]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vcm-bdrate", description="Bjøntegaard delta rate of TEST against ANCHOR.")
    parser.add_argument("anchor", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("--metric", default="psnr", help="quality column: psnr, ms_ssim, map, ... (default psnr)")
    parser.add_argument("--method", choices=("pchip", "cubic"), default="pchip")
    args = parser.parse_args(argv)
    try:
        anchor = read_curve(args.anchor, args.metric)
        test = read_curve(args.test, args.metric)
        quality = bd_quality(*anchor, *test, method=args.method)
        rate = bd_rate(*anchor, *test, method=args.method)
    except BDRateError as err:
        print(f"vcm-bdrate: error: {err}", file=sys.stderr)
        return 2
    print(f"BD-{args.metric} {args.method}: {quality:+.4f}")
    print(f"BD-rate {args.metric} {args.method}: {rate:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
