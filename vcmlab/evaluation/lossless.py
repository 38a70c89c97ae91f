"""vcm-eval's lossless mode (codec=lossless): every image file of a split coded by each lossless
model checkpoint and each lossless anchor, written to disk, read back, decoded and compared with the
file's own 8-bit samples byte for byte. A decode that differs stops the run: a lossless codec that
is not lossless has no rate to report.

Rates are bits per sub-pixel, bpsp = 8 · file bytes / (H · W · C), counting the whole file each codec
writes (the standard's own file for the anchors; the model's stream with vcmlab's container: header,
fingerprint, checksum); C is the image's own channel count (1 for grayscale, 3 for RGB), also when a
format stores gray as RGB. `bpsp` averages over images, `bpsp_total` is all bits over all sub-pixels.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig
from pytorch_lightning.loggers import WandbLogger
from tqdm import tqdm

from codec_networks.lossless_msp import ORDERS, LosslessMSP
from conventional_codecs.lossless import LosslessImageCodec, lossless_anchor
from datamodules.image_datasets import UNUSABLE_IMAGE_ERRORS
from datamodules.image_io import load_8bit
from vcmlab.checkpoints import load_codec, read_checkpoint, stored_config
from vcmlab.errors import CheckpointError, CodecError, ConfigError, InputError
from vcmlab.evaluation.outputs import write_csv
from vcmlab.instantiate import instantiate_group

log = logging.getLogger(__name__)


class LosslessModelCodec:
    """A LosslessMSP checkpoint behind the anchors' interface (8-bit arrays in and out). A grayscale
    image given to an RGB model is coded as three equal channels (and charged for them)."""

    extension = ".bin"

    def __init__(self, model: LosslessMSP, order: str, name: str, checkpoint: str):
        if order not in ORDERS:
            raise ConfigError(f"codec.order must be one of {ORDERS} or null, got {order!r}")
        self.model, self.order, self.name, self.checkpoint = model.eval(), order, name, checkpoint

    @classmethod
    def from_checkpoint(cls, path: str, order: str | None, name: str, device: str) -> LosslessModelCodec:
        checkpoint = read_checkpoint(path)
        model = load_codec(path, checkpoint)
        if not isinstance(model, LosslessMSP):
            raise CheckpointError(
                f"{path} holds a lossy codec ({type(model).__name__}): evaluate it with codec=checkpoints"
            )
        trained = stored_config(checkpoint, path).get("module", {}).get("order", "default")
        return cls(model.to(device), order or trained, name, path)

    @property
    def settings(self) -> dict:
        m = self.model
        return {
            "encoder": "LosslessMSP (vcmlab, constriction range coder)",
            "checkpoint": self.checkpoint,
            "order": self.order,
            "channels": m.channels,
            "levels": m.levels,
            "components": m.components,
        }

    def encode(self, array: np.ndarray) -> bytes:
        image = torch.from_numpy(np.ascontiguousarray(array))
        image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)
        if image.shape[0] == 1 and self.model.channels == 3:
            image = image.expand(3, -1, -1)
        elif image.shape[0] != self.model.channels:
            raise CodecError(f"{self.name}: a grayscale model cannot code an RGB image; use an RGB checkpoint")
        return self.model.encode(image.contiguous(), self.order)

    def decode(self, data: bytes) -> np.ndarray:
        image = self.model.decode(data)
        return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def reproduces(decoded: np.ndarray, original: np.ndarray) -> bool:
    """Byte for byte; a format that stores gray as RGB must give three channels equal to it."""
    decoded = np.asarray(decoded)
    if decoded.dtype != np.uint8:
        return False
    if original.ndim == 2 and decoded.ndim == 3 and decoded.shape[-1] in (3, 4):
        return bool((decoded[..., :3] == original[..., None]).all()) and decoded.shape[:2] == original.shape
    return decoded.shape == original.shape and bool((decoded == original).all())


def image_paths(dataset) -> list[Path]:
    paths = getattr(dataset, "paths", None)
    if paths is None:
        raise ConfigError(f"codec=lossless reads image files; {type(dataset).__name__} does not list its files")
    return [Path(p) for p in paths]


def build_codecs(codec_cfg: DictConfig, device: str) -> list[LosslessImageCodec]:
    paths = codec_cfg.get("ckpt_paths") or []
    paths = list(paths) if isinstance(paths, (list, ListConfig)) else [paths]
    codecs: list[LosslessImageCodec] = [
        LosslessModelCodec.from_checkpoint(str(p), codec_cfg.get("order"), f"lossless_msp_{i}", device)
        for i, p in enumerate(paths)
    ]
    codecs += [lossless_anchor(str(name)) for name in codec_cfg.get("anchors") or []]
    if not codecs:
        raise ConfigError("codec=lossless has nothing to evaluate: set codec.ckpt_paths and/or codec.anchors")
    return codecs


def evaluate_codec(
    codec: LosslessImageCodec, images: list[tuple[str, np.ndarray]], out_dir: Path, progress: bool = True
) -> dict:
    stream_dir = out_dir / "bitstreams"
    stream_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, array in tqdm(images, desc=codec.name, unit="img", disable=not progress):
        start = time.perf_counter()
        data = codec.encode(array)
        encode_s = time.perf_counter() - start
        path = stream_dir / f"{name}{codec.extension}"
        path.write_bytes(data)
        start = time.perf_counter()
        decoded = codec.decode(path.read_bytes())
        decode_s = time.perf_counter() - start
        if not reproduces(decoded, array):
            raise CodecError(f"{codec.name} did not reproduce {name} byte for byte: it is not lossless here")
        h, w = array.shape[:2]
        channels = 1 if array.ndim == 2 else array.shape[2]
        rows.append(
            {
                "name": name,
                "height": h,
                "width": w,
                "channels": channels,
                "bytes": len(data),
                "bpsp": 8 * len(data) / (h * w * channels),
                "bpp": 8 * len(data) / (h * w),
                "encode_s": encode_s,
                "decode_s": decode_s,
            }
        )
    write_csv(out_dir / "per_image.csv", rows)
    subpixels = sum(r["height"] * r["width"] * r["channels"] for r in rows)
    summary = {
        "name": codec.name,
        "mode": "lossless",
        "images": len(rows),
        "codec_settings": dict(getattr(codec, "settings", {})),
        "bpsp": float(np.mean([r["bpsp"] for r in rows])),
        "bpsp_total": 8 * sum(r["bytes"] for r in rows) / subpixels,
        "bpp": float(np.mean([r["bpp"] for r in rows])),
        "encode_s": float(np.mean([r["encode_s"] for r in rows])),
        "decode_s": float(np.mean([r["decode_s"] for r in rows])),
        "exact": True,  # every decode was compared: evaluate_codec raises otherwise
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def read_images(paths: list[Path], alpha: str, on_bad_image: str) -> list[tuple[str, np.ndarray]]:
    images = []
    for path in paths:
        try:
            images.append((path.stem, load_8bit(path, alpha)))
        except UNUSABLE_IMAGE_ERRORS as err:
            if on_bad_image != "skip":
                raise
            log.warning("skipping unusable image: %s", err)
    if not images:
        raise InputError("no usable image to evaluate (all were skipped)")
    return images


def table(summaries: list[dict]) -> str:
    lines = [
        "| codec | images | bpsp (mean) | bpsp (total) | encode s | decode s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in sorted(summaries, key=lambda s: s["bpsp_total"]):
        lines.append(
            f"| {s['name']} | {s['images']} | {s['bpsp']:.3f} | {s['bpsp_total']:.3f} | "
            f"{s['encode_s']:.3f} | {s['decode_s']:.3f} |"
        )
    return "\n".join(lines)


def evaluate_lossless(cfg: DictConfig, dataset) -> list[dict]:
    """Every configured lossless codec on every image file of `dataset`; writes <codec>/{bitstreams/,
    per_image.csv, summary.json}, summaries.json and lossless_table.md under the run directory."""
    out_root = Path(cfg.paths.output_dir)
    codecs = build_codecs(cfg.codec, cfg.device)
    images = read_images(image_paths(dataset), cfg.codec.get("alpha", "refuse"), cfg.data.get("on_bad_image", "error"))
    summaries = []
    with torch.inference_mode():
        for codec in codecs:
            summary = evaluate_codec(codec, images, out_root / codec.name)
            log.info("%s: bpsp %.4f (%d images)", codec.name, summary["bpsp"], summary["images"])
            summaries.append(summary)
    (out_root / "summaries.json").write_text(json.dumps(summaries, indent=2) + "\n")
    markdown = table(summaries)
    (out_root / "lossless_table.md").write_text(markdown + "\n")
    log.info("lossless results:\n%s", markdown)
    for logger in instantiate_group(cfg.get("logger")):
        if isinstance(logger, WandbLogger):
            try:
                columns = ["name", "images", "bpsp", "bpsp_total", "bpp", "encode_s", "decode_s"]
                logger.log_table(
                    key="eval/lossless", columns=columns, data=[[s[c] for c in columns] for s in summaries]
                )
            finally:
                logger.experiment.finish()
    return summaries
