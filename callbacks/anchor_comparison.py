"""At the end of training: the trained codec through real bitstreams on the validation photos, next to
JPEG and WebP at the same bpp on the same photos, so that a run says whether its codec works."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from codec_networks import LearnedCodec
from conventional_codecs import PillowCodec
from datamodules.image_datasets import usable_items
from vcmlab.evaluation.rate_points import RatePoint
from vcmlab.evaluation.runner import evaluate_rate_point
from vcmlab.evaluation.task_scores import TaskScorer
from vcmlab.rd_plot import plot_rd_curves

TASK_SCORES = ("top1_agreement", "top5_agreement", "map")


def measure(name: str, codec, images: list[dict], scorer: TaskScorer | None, out: Path) -> dict:
    """vcm-eval's loop (real bitstream files under out/name): mean payload bpp and PSNR over `images`,
    the task score against the task network's predictions on the uncompressed images."""
    summary = evaluate_rate_point(RatePoint(name, codec, codec), images, out / name, scorer, progress=False)
    return {"name": name, "bpp": summary["bpp"], "psnr": summary["psnr"]} | {
        k: summary[k] for k in TASK_SCORES if k in summary
    }


def at_bpp(
    kind: str, target: float, images: list[dict], scorer: TaskScorer | None, out: Path
) -> tuple[dict, list[dict]]:
    """The quality setting of a Pillow codec whose mean bpp is nearest `target` (bisection over 1..95;
    bpp grows with quality), and every point measured on the way (the anchor's curve)."""
    measured: dict[int, dict] = {}

    def at(quality: int) -> dict:
        if quality not in measured:
            measured[quality] = measure(f"{kind}_q{quality}", PillowCodec(kind, quality), images, scorer, out)
        return measured[quality]

    low, high = 1, 95
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if at(middle)["bpp"] < target else (low, middle)
    best = min((at(low), at(high)), key=lambda row: abs(row["bpp"] - target))
    for quality in (10, 30, 50, 75):  # a few more points, for the plot
        at(quality)
    return best, sorted(measured.values(), key=lambda row: row["bpp"])


def markdown(rows: list[dict]) -> str:
    columns = ["name", "bpp", "psnr", *[k for k in TASK_SCORES if any(k in r for r in rows)]]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns)
            + " |"
        )
    return "\n".join(lines)


class AnchorComparison(pl.Callback):
    """On fit end (rank zero): `anchor_comparison.{md,json}` and `anchor_rd.png` in the run directory,
    the same table and plot in W&B; `table` keeps the Markdown table (vcm-train logs it last). The
    learned codec is a copy of the trained one (its CDF tables are built on the copy); JPEG and WebP
    (Pillow, 4:2:0) are each set to the quality whose bpp is nearest the learned codec's."""

    def __init__(self, anchors: list[str] | None = None, max_images: int | None = None):
        self.anchors = list(anchors) if anchors is not None else ["jpeg", "webp"]
        self.max_images = max_images
        self.table: str | None = None

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        network = getattr(pl_module, "codec", None)
        datamodule = trainer.datamodule
        if network is None or datamodule is None or "val" not in getattr(datamodule, "datasets", {}):
            return
        dataset = datamodule.datasets["val"]
        items = usable_items(dataset)
        images = [
            {"image": item["image"], "name": item["name"]}
            for item, _ in zip(items, range(self.max_images or len(dataset)))
        ]
        task = getattr(pl_module, "task", None)
        scorer = TaskScorer(task, "uncompressed") if task is not None else None
        out = Path(trainer.default_root_dir)
        streams = out / "anchor_comparison"
        codec = LearnedCodec(copy.deepcopy(network).cpu().float())  # a copy: its CDF tables are its own
        with torch.inference_mode():
            learned = measure("learned", codec, images, scorer, streams)
            rows, curves = [learned], {"learned": [learned]}
            for kind in self.anchors:
                best, curves[kind] = at_bpp(kind, learned["bpp"], images, scorer, streams)
                rows.append(best)
        names = [image["name"] for image in images]
        self.table = (
            f"the trained codec next to {' and '.join(self.anchors)} at the same bpp, on the "
            f"validation images {', '.join(names)}:\n{markdown(rows)}"
        )
        (out / "anchor_comparison.md").write_text(self.table + "\n")
        (out / "anchor_comparison.json").write_text(
            json.dumps({"images": names, "rows": rows, "curves": curves}, indent=2) + "\n"
        )
        plot = plot_rd_curves(curves, out / "anchor_rd.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                columns = list(dict.fromkeys(k for row in rows for k in row))
                logger.log_table(
                    key="anchors/comparison", columns=columns, data=[[row.get(c) for c in columns] for row in rows]
                )
                logger.log_image(key="anchors/rd_plot", images=[str(plot)])
