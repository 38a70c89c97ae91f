"""What an evaluation writes besides the per-rate-point files: summaries.json, the RD plot and W&B."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import WandbLogger

from vcmlab.rd_plot import plot_rd_curves, read_summaries


def write_csv(path: Path, rows: list[dict]) -> None:
    """One row per image (per frame, per sequence); a column a row lacks is left empty."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
        writer.writeheader()
        writer.writerows(rows)


TIMING_COLUMNS = ("encode_s", "decode_s", "task_s", "metrics_s")  # measurements: they differ between runs


def reported_outputs(run_dir: Path) -> dict:
    """Everything an image run reports, less its timings (per-image rows, summaries, predictions,
    bitstreams), by path: what two runs of one evaluation must agree on, whatever the workers,
    shards or interruptions."""
    found = {}
    for path in sorted(Path(run_dir).rglob("*")):
        rel = str(path.relative_to(run_dir))
        if path.name == "per_image.csv":
            with open(path, newline="") as f:
                found[rel] = [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]
        elif path.name in ("summary.json", "summaries.json"):
            data = json.loads(path.read_text())
            found[rel] = [_untimed(s) for s in data] if isinstance(data, list) else _untimed(data)
        elif path.name == "predictions.json" or (path.suffix == ".bin" and not path.name.startswith(".")):
            found[rel] = path.read_bytes()
    return found


def _untimed(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING_COLUMNS}


def write_outputs(
    cfg: DictConfig, summaries: list[dict], out_root: Path, label: str | None = None, wandb_group: str | None = None
) -> Path:
    """summaries.json (the input of vcm-bdrate), rd_plot.png with the configured anchors, W&B tables
    (in `wandb_group`, when given: a merge of shards logs into their group)."""
    (out_root / "summaries.json").write_text(json.dumps(summaries, indent=2) + "\n")
    anchors = {Path(p).parent.name or str(p): read_summaries(Path(p)) for p in cfg.get("anchors") or []}
    label = cfg.get("label") or label or cfg.codec.kind
    plot = plot_rd_curves({label: summaries, **anchors}, out_root / "rd_plot.png")
    for logger in _wandb_loggers(cfg, wandb_group, "merge" if wandb_group else None):
        try:
            columns = list(dict.fromkeys(k for s in summaries for k in s))
            rows = [[_cell(s.get(c)) for c in columns] for s in summaries]
            logger.log_table(key="eval/rate_points", columns=columns, data=rows)
            _log_filter_usage(logger, summaries)
            logger.log_image(key="eval/rd_plot", images=[str(plot)])
        finally:  # a failed upload still closes the (offline) run
            logger.experiment.finish()
    return plot


def wandb_group(fingerprint: str) -> str:
    """The W&B group of every shard of one evaluation and of their merge."""
    return f"eval-{fingerprint[:12]}"


def log_shard(cfg: DictConfig, manifest: dict) -> None:
    """A shard's W&B run (in its evaluation's group): how many images it coded and kept, and its time."""
    for logger in _wandb_loggers(cfg, wandb_group(manifest["fingerprint"]), f"shard_{manifest['shard']}"):
        try:
            run = manifest["run"]
            columns = ["shard", "num_shards", "coded", "kept", "wall_s", *run["coding_s"]]
            row = [manifest["shard"], manifest["num_shards"], run["coded"], run["reused"], run["wall_s"]]
            logger.log_table(key="eval/shard", columns=columns, data=[row + list(run["coding_s"].values())])
        finally:
            logger.experiment.finish()


def _wandb_loggers(cfg: DictConfig, group: str | None, job_type: str | None) -> list[WandbLogger]:
    loggers = [
        instantiate(entry, **({"group": group, "job_type": job_type} if group else {}))
        for entry in (cfg.get("logger") or {}).values()
        if isinstance(entry, DictConfig) and "WandbLogger" in str(entry.get("_target_", ""))
    ]
    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value  # W&B table cells are scalars


def _log_filter_usage(logger: WandbLogger, summaries: list[dict]) -> None:
    """One W&B histogram per rate point: bin 0 = no filter, bin j = filter j-1."""
    import wandb

    for s in summaries:
        if "filter_usage" in s:
            edges = [j - 0.5 for j in range(len(s["filter_usage"]) + 1)]
            logger.experiment.log(
                {f"eval/filter_usage/{s['name']}": wandb.Histogram(np_histogram=(s["filter_usage"], edges))}
            )
