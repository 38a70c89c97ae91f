"""Merge mode (`vcm-eval merge='[DIR,...]'`, or `vcm-eval-merge DIR...`): the run directories of every
shard of one image evaluation become the outputs one unsharded run writes (per rate point:
per_image.csv, predictions.json, summary.json; summaries.json and rd_plot.png), in this run's
directory. Task scores are computed once, on the merged records, never averaged over shards.
Bitstreams stay where the shards wrote them; every record is verified against its bitstream first.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from vcmlab.errors import InputError
from vcmlab.evaluation.manifest import check_shards, read_manifest
from vcmlab.evaluation.outputs import wandb_group, write_outputs
from vcmlab.evaluation.records import read_point_records
from vcmlab.evaluation.runner import write_rate_point


def merge_shards(cfg: DictConfig) -> list[dict]:
    run_dirs = [Path(d) for d in cfg.merge]
    manifests = {d: read_manifest(d) for d in run_dirs}
    num_shards = check_shards(manifests)
    first = next(iter(manifests.values()))
    out_root = Path(cfg.paths.output_dir)
    skipped = sum(len(m["skipped"]) for m in manifests.values())  # the same images at every rate point
    summaries = []
    for info in first["points"]:
        name, records, owner = info["name"], {}, {}
        for run_dir, manifest in manifests.items():
            found = read_point_records(run_dir / name)
            if len(found) != manifest["records"][name]:
                raise InputError(
                    f"{run_dir / name}: {len(found)} records where the shard finished with "
                    f"{manifest['records'][name]}; rerun that shard to recode what is missing"
                )
            for record in found.values():
                if record["index"] % num_shards != manifest["shard"]:
                    raise InputError(f"{run_dir / name}: image {record['name']} is not of shard {manifest['shard']}")
                if record["name"] in owner:
                    raise InputError(f"image {record['name']} is in two shards: {owner[record['name']]} and {run_dir}")
                owner[record["name"]] = run_dir
                records[record["index"]] = record
        ordered = [records[i] for i in sorted(records)]
        summaries.append(
            write_rate_point(out_root / name, info, ordered, first["scoring"], skipped, first["yuv_psnr_matrix"])
        )
    (out_root / "merged_from.json").write_text(
        json.dumps({"fingerprint": first["fingerprint"], "shards": [str(d) for d in run_dirs]}, indent=2) + "\n"
    )
    write_outputs(cfg, summaries, out_root, first["label"], wandb_group(first["fingerprint"]))
    return summaries
