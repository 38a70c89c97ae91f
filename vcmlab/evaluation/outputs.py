"""What an evaluation writes besides the per-rate-point files: summaries.json, the RD plot and W&B."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.loggers import WandbLogger

from vcmlab.instantiate import instantiate_group
from vcmlab.rd_plot import plot_rd_curves, read_summaries


def write_csv(path: Path, rows: list[dict]) -> None:
    """One row per image (per frame, per sequence); a column a row lacks is left empty."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(cfg: DictConfig, summaries: list[dict], out_root: Path) -> Path:
    """summaries.json (the input of vcm-bdrate), rd_plot.png with the configured anchors, W&B tables."""
    (out_root / "summaries.json").write_text(json.dumps(summaries, indent=2) + "\n")
    anchors = {Path(p).parent.name or str(p): read_summaries(Path(p)) for p in cfg.get("anchors") or []}
    plot = plot_rd_curves({cfg.get("label") or cfg.codec.kind: summaries, **anchors}, out_root / "rd_plot.png")
    for logger in instantiate_group(cfg.get("logger")):
        if isinstance(logger, WandbLogger):
            try:
                columns = list(dict.fromkeys(k for s in summaries for k in s))
                rows = [[_cell(s.get(c)) for c in columns] for s in summaries]
                logger.log_table(key="eval/rate_points", columns=columns, data=rows)
                _log_filter_usage(logger, summaries)
                logger.log_image(key="eval/rd_plot", images=[str(plot)])
            finally:  # a failed upload still closes the (offline) run
                logger.experiment.finish()
    return plot


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
