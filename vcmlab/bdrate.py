"""vcm-bdrate: BD-rate of test curves against an anchor curve.

    vcm-bdrate [--metric psnr] [--method pchip|cubic] ANCHOR TEST
    vcm-bdrate --metric psnr --metric map [--json table.json] ANCHOR TEST [TEST ...]   # one table

Each file is a summaries.json written by vcm-eval (a list of rate points, each with "bpp" and the
metrics), or a CSV with a `bpp` column and one column per metric. With one test and one metric the last
line printed is `BD-rate <metric> <method>: <value>%` and the exit code is 2 when the curves allow no BD
value. With several, a Markdown table is printed (a cell that allows no value says why) and the exit
code is 2 only when no cell has a value. Tests are named by their run directory (or --names).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from vcm_metrics.bd_rate import BDRateError, bd_quality, bd_rate
from vcmlab.cli import report_user_errors


def read_curve(path: Path, metric: str) -> tuple[list[float], list[float]]:
    if not path.is_file():
        raise BDRateError(f"{path}: no such file")
    if path.suffix == ".json":
        try:
            points = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BDRateError(f"{path}: not valid JSON, truncated or corrupt ({err})") from None
        points = points.get("rate_points", [points]) if isinstance(points, dict) else points
        where = [f"rate point {i}" for i in range(len(points))] if isinstance(points, list) else []
    else:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            points, where = [], []
            for row in reader:
                if None in row or None in row.values():
                    raise BDRateError(f"{path}:{reader.line_num}: the row's number of fields differs from the header's")
                points.append(row)
                where.append(f"line {reader.line_num}")
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise BDRateError(f"{path}: expected a list of rate points (objects with bpp and metrics)")
    if not points:
        raise BDRateError(f"{path}: no rate points")
    missing = [key for key in ("bpp", metric) if key not in points[0]]
    if missing:
        raise BDRateError(f"{path}: no {' or '.join(missing)} column (has {sorted(points[0])})")
    return _column(points, "bpp", path, where), _column(points, metric, path, where)


def _column(points: list[dict], key: str, path: Path, where: list[str]) -> list[float]:
    values = []
    for point, place in zip(points, where):
        try:
            value = float(point[key])
        except (KeyError, TypeError, ValueError):
            raise BDRateError(f"{path}, {place}: {key}={point.get(key)!r} is not a number") from None
        if not math.isfinite(value):
            raise BDRateError(f"{path}, {place}: {key}={value} is not finite")
        values.append(value)
    return values


def bd_table(anchor: Path, tests: list[Path], metrics: list[str], method: str, names: list[str]) -> list[dict]:
    """One row per test: BD-rate (%) per metric, or the reason there is none."""
    rows = []
    for name, test in zip(names, tests):
        row: dict = {"test": name}
        for metric in metrics:
            try:
                row[f"bd_rate_{metric}"] = bd_rate(
                    *read_curve(anchor, metric), *read_curve(test, metric), method=method
                )
            except BDRateError as err:
                row[f"bd_rate_{metric}"] = None
                row[f"error_{metric}"] = str(err)
        rows.append(row)
    return rows


def markdown(rows: list[dict], metrics: list[str], anchor: str) -> str:
    lines = [f"| vs {anchor} | " + " | ".join(f"BD-rate {m}" for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for row in rows:
        cells = [
            f"{row[f'bd_rate_{m}']:+.2f}%" if row[f"bd_rate_{m}"] is not None else f"n/a ({row[f'error_{m}']})"
            for m in metrics
        ]
        lines.append(f"| {row['test']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _name(path: Path) -> str:
    return path.parent.name if path.name == "summaries.json" else path.stem


@report_user_errors("vcm-bdrate")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vcm-bdrate", description="Bjøntegaard delta rate of TEST curves against ANCHOR."
    )
    parser.add_argument("anchor", type=Path)
    parser.add_argument("tests", type=Path, nargs="+", metavar="test")
    parser.add_argument(
        "--metric", action="append", help="quality column: psnr, ms_ssim, map, ... (default psnr; repeat for a table)"
    )
    parser.add_argument("--method", choices=("pchip", "cubic"), default="pchip")
    parser.add_argument("--names", nargs="+", help="row names for the tests (default: their run directories)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args(argv)
    metrics = args.metric or ["psnr"]
    if len(args.tests) == 1 and len(metrics) == 1 and args.json is None:
        metric = metrics[0]
        try:
            anchor = read_curve(args.anchor, metric)
            test = read_curve(args.tests[0], metric)
            quality = bd_quality(*anchor, *test, method=args.method)
            rate = bd_rate(*anchor, *test, method=args.method)
        except BDRateError as err:
            print(f"vcm-bdrate: error: {err}", file=sys.stderr)
            return 2
        print(f"BD-{metric} {args.method}: {quality:+.4f}")
        print(f"BD-rate {metric} {args.method}: {rate:.2f}%")
        return 0
    names = args.names or [_name(t) for t in args.tests]
    if len(names) != len(args.tests):
        parser.error(f"--names needs one name per test ({len(args.tests)}), got {len(names)}")
    rows = bd_table(args.anchor, args.tests, metrics, args.method, names)
    print(markdown(rows, metrics, _name(args.anchor)))
    if args.json:
        args.json.write_text(
            json.dumps({"anchor": str(args.anchor), "method": args.method, "rows": rows}, indent=2) + "\n"
        )
    return 0 if any(row[f"bd_rate_{m}"] is not None for row in rows for m in metrics) else 2


if __name__ == "__main__":
    sys.exit(main())
