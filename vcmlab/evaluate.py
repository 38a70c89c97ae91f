"""vcm-eval: code every image of a dataset into real bitstream files with one or more trained
checkpoints, decode them with a separately built receiver, and measure rate and quality."""
from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from tqdm import tqdm

from codec_networks import LearnedCodec
from vcm_metrics import ms_ssim, psnr
from vcmlab import CONF_DIR
from vcmlab.checkpoints import load_codec

log = logging.getLogger(__name__)


def evaluate_checkpoint(ckpt_path: str, dataset, out_dir: Path, device: str = "cpu") -> dict:
    """Per-image CSV, bitstream files and a summary JSON for one checkpoint (one rate point)."""
    sender = LearnedCodec(load_codec(ckpt_path), device)
    receiver = LearnedCodec(load_codec(ckpt_path), device)  # built on its own, as a receiver would
    stream_dir = out_dir / "bitstreams"
    stream_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in tqdm(range(len(dataset)), desc=f"eval {Path(ckpt_path).name}", unit="img"):
        item = dataset[index]
        x = item["image"]
        start = time.perf_counter()
        data = sender.encode(x)
        encode_s = time.perf_counter() - start
        path = stream_dir / f"{item['name']}.vcm"
        path.write_bytes(data)
        start = time.perf_counter()
        x_hat = receiver.decode(path.read_bytes()).cpu()
        decode_s = time.perf_counter() - start
        h, w = x.shape[-2:]
        rows.append({
            "name": item["name"], "height": h, "width": w, "bytes": len(data), "bpp": 8 * len(data) / (h * w),
            "psnr": float(psnr(x_hat[None], x[None])), "ms_ssim": float(ms_ssim(x_hat[None], x[None])),
            "encode_s": encode_s, "decode_s": decode_s,
        })
    with open(out_dir / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {"checkpoint": str(ckpt_path), "images": len(rows)}
    summary |= {k: sum(r[k] for r in rows) / len(rows) for k in ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s")}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate(cfg: DictConfig) -> list[dict]:
    paths = cfg.ckpt_paths
    paths = list(paths) if isinstance(paths, (list, ListConfig)) else [paths]
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    split = cfg.split if cfg.split in datamodule.datasets else "val"
    dataset = datamodule.datasets[split]
    out_root = Path(cfg.paths.output_dir)
    summaries = []
    with torch.inference_mode():
        for i, ckpt in enumerate(paths):
            summary = evaluate_checkpoint(str(ckpt), dataset, out_root / f"rate_point_{i}", cfg.device)
            log.info("rate point %d: %s", i, summary)
            summaries.append(summary)
    (out_root / "summaries.json").write_text(json.dumps(summaries, indent=2) + "\n")
    return summaries


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
