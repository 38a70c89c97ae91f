"""vcm-eval throughput with worker processes, and the projected wall time of the MPEG VCM image protocol.

    python -m benchmarks.eval_scale --out bench-results/eval_scale.json [--workers 2] [--vvenc-encode-s S]

Codes the 9 sample photos (whole images) on the HEVC ladder (6 QPs, x265 medium) once with workers=1
and once with workers=N in the same script, and reports images per second both over the whole coding
phase (worker start-up included) and in steady state (after every worker's first result), and checks
that both runs wrote identical outputs. From the measured seconds per megapixel (encode, and decode +
metrics) it projects the full protocol: 5,000 images x 6 QPs x 4 resize scales (1, 0.75, 0.5, 0.25;
time taken as proportional to pixel count) at 640x480, for one machine like this one (its cores, at
the measured parallel efficiency) and for 100 such machines (shards are independent; the merge is
seconds). VVenC is measured when `vvencapp` is on PATH; otherwise --vvenc-encode-s (default: 1.5 s,
the middle of the 0.5-2.6 s per 640x480 intra picture issue 18 measured for VVenC 1.15 medium on one
core) stands in, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from datamodules.sample import TRAIN_IMAGES, VAL_IMAGES, sample_image_paths
from vcmlab.compose import compose_config
from vcmlab.evaluation import evaluate
from vcmlab.evaluation.manifest import MANIFEST
from vcmlab.evaluation.outputs import reported_outputs

warnings.filterwarnings("ignore")

PROTOCOL = {"images": 5000, "rate_points": 6, "scales": [1.0, 0.75, 0.5, 0.25], "width": 640, "height": 480}


def run(folder: Path, out: Path, codec: str, workers: int) -> dict:
    overrides = [
        f"codec={codec}",
        "codec.scales=[1.0]",
        "data=image_folder",
        f"data.train_dir={folder}",
        f"data.val_dir={folder}",
        f"data.test_dir={folder}",
        "data.num_workers=0",
        f"workers={workers}",
    ]
    cfg = compose_config(overrides, out, "eval")
    summaries = evaluate(cfg)
    manifest = json.loads((out / MANIFEST).read_text())["run"]
    rows = [json.loads(p.read_text())["row"] for p in out.glob("*/records/*.json")]
    megapixels = sum(r["height"] * r["width"] for r in rows) / 1e6
    return {
        "workers": workers,
        "encodes": len(rows),
        "coding_wall_s": manifest["coding_wall_s"],
        "images_per_s": len(rows) / manifest["coding_wall_s"],
        "steady_images_per_s": manifest["steady_images_per_s"],
        "encode_s_per_megapixel": sum(r["encode_s"] for r in rows) / megapixels,
        "other_s_per_megapixel": sum(r["decode_s"] + r["metrics_s"] + r["task_s"] for r in rows) / megapixels,
        "codec_settings": summaries[0]["codec_settings"],
    }


def projection(encode_s_per_mp: float, other_s_per_mp: float, cores: int, efficiency: float) -> dict:
    p = PROTOCOL
    megapixels = p["images"] * p["rate_points"] * sum(s * s for s in p["scales"]) * p["width"] * p["height"] / 1e6
    core_hours = megapixels * (encode_s_per_mp + other_s_per_mp) / 3600
    one_machine = core_hours / (cores * efficiency)
    return {
        "encodes": p["images"] * p["rate_points"] * len(p["scales"]),
        "single_core_hours": core_hours,
        "one_machine_hours": one_machine,
        "hundred_machines_hours": one_machine / 100,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/eval_scale.json"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--vvenc-encode-s", type=float, default=1.5, help="per 640x480 picture, when not measured")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="eval_scale_"))
    folder = work / "photos"
    folder.mkdir()
    for path in sample_image_paths(TRAIN_IMAGES + VAL_IMAGES):
        shutil.copy(path, folder / path.name)
    runs = {w: run(folder, work / f"hevc_workers{w}", "hevc", w) for w in (1, args.workers)}
    identical = reported_outputs(work / "hevc_workers1") == reported_outputs(work / f"hevc_workers{args.workers}")
    one, many = runs[1], runs[args.workers]
    speedup = many["images_per_s"] / one["images_per_s"]
    steady = many["steady_images_per_s"] / one["steady_images_per_s"]
    efficiency = steady / args.workers
    result = {
        "data": "the 9 sample photos, whole images",
        "cores": os.cpu_count(),
        "runs": list(runs.values()),
        "identical_outputs": identical,
        "speedup_including_startup": speedup,
        "speedup_steady": steady,
        "target_speedup_on_2_cores": 1.8,
        "protocol": PROTOCOL,
        "projection_hevc": projection(
            one["encode_s_per_megapixel"], one["other_s_per_megapixel"], args.workers, efficiency
        ),
    }
    vvenc_mp = PROTOCOL["width"] * PROTOCOL["height"] / 1e6
    if shutil.which("vvencapp"):
        measured = run(folder, work / "vvenc", "vvenc", args.workers)
        result["vvenc"] = measured | {"source": "measured here"}
        vvenc_encode = measured["encode_s_per_megapixel"]
    else:
        vvenc_encode = args.vvenc_encode_s / vvenc_mp
        result["vvenc"] = {
            "source": f"not measured (no vvencapp on PATH): {args.vvenc_encode_s} s per 640x480 intra picture, "
            "issue 18's measurement of VVenC 1.15 medium on one core",
        }
    result["projection_vvenc"] = projection(vvenc_encode, one["other_s_per_megapixel"], args.workers, efficiency)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
