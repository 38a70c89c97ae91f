"""What vcm-train costs per step over a plain PyTorch loop, with the data pipeline taken out of the ratio.

The plain loop follows CompressAI's examples/train.py: the same model, loss (λ·255²·MSE + bpp), main +
aux Adam optimizers and gradient clipping. Both sides iterate ONE preloaded set of batches through the
same kind of DataLoader (drawn once from the configured datamodule and kept in memory), and both record
a fingerprint of every batch they train on, which must agree, so the ratio measures the framework's
per-step work: Lightning's loop, logging, callbacks, the manual aux step. The data pipeline's own cost
(seconds per batch of the configured loader) is reported separately. Repeats are interleaved (plain,
framework, plain, ...); the ratio is the median of the paired ratios, with their spread. Validation is
off on both sides: this measures training.

On the default size the framework also runs with module.compile=true (torch.compile of the transforms;
its compile time falls in the warm-up steps) and module.channels_last=true, against its eager median.

Two model sizes: the CPU default of experiment=lic_hyperprior (N=64, M=96, 128x128 crops) and
CompressAI's quality-3 bmshj2018-hyperprior (N=128, M=192) on 256x256 crops.

    python -m benchmarks.train_throughput --out bench-results/train_throughput.json [--sizes default q3_256]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from compressai.losses import RateDistortionLoss
from hydra.utils import instantiate
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

from vcmlab.compose import compose_config
from vcmlab.train import train

warnings.filterwarnings("ignore")

SIZES = {
    "default": {"overrides": [], "steps": 40, "warmup": 8},
    "q3_256": {"overrides": ["model.N=128", "model.M=192", "data.crop_size=256"], "steps": 14, "warmup": 4},
}


class _Batches(Dataset):
    def __init__(self, batches: list[torch.Tensor]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.batches[i]}


class PreloadedBatches(pl.LightningDataModule):
    """The batches in `path` (a list of image tensors, read with weights_only), in order, through a
    DataLoader without workers or collation: what both sides of the benchmark train on."""

    def __init__(self, path: str):
        super().__init__()
        self.batches = torch.load(path, weights_only=True)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Batches(self.batches), batch_size=None, shuffle=False, num_workers=0)


def fingerprint(x: torch.Tensor) -> float:
    return round(float(x.double().sum()), 6)


class StepTimer(pl.Callback):
    """Images per second from the start of step `warmup` to the end of the last one, and the
    fingerprint of every batch, written to <run dir>/step_timer.json."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start, self.images, self.seen = None, 0, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(fingerprint(batch["image"]))
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.images += batch["image"].shape[0]

    def on_train_end(self, trainer, pl_module):
        rate = self.images / (time.perf_counter() - self.start)
        (Path(trainer.default_root_dir) / "step_timer.json").write_text(
            json.dumps({"images_per_s": rate, "seen": self.seen})
        )


def compose_cfg(steps: int, out: Path, overrides: list[str], batches: Path | None = None):
    cfg = compose_config(
        [
            "experiment=lic_hyperprior",
            "logger=none",
            "callbacks=default",
            f"trainer.max_steps={steps}",
            "+trainer.limit_val_batches=0",
            "+trainer.enable_checkpointing=false",
            "~callbacks.model_checkpoint",
            "~callbacks.last_checkpoint",
            *overrides,
        ],
        out,
    )
    if batches is not None:
        with open_dict(cfg):
            cfg.data = {"_target_": "benchmarks.train_throughput.PreloadedBatches", "path": str(batches)}
    return cfg


def preload(steps: int, overrides: list[str], path: Path) -> float:
    """`steps` batches of the configured datamodule saved to `path`; returns its seconds per batch."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(steps, Path(tmp), overrides)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batches, start = [], time.perf_counter()
    while len(batches) < steps:
        for batch in datamodule.train_dataloader():
            batches.append(batch["image"].clone())
            if len(batches) == steps:
                break
    seconds = (time.perf_counter() - start) / steps
    torch.save(batches, path)
    return seconds


def framework_run(steps: int, warmup: int, overrides: list[str], batches: Path) -> tuple[float, list]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(steps, Path(tmp), overrides, batches)
        with open_dict(cfg):
            cfg.callbacks.timer = {"_target_": "benchmarks.train_throughput.StepTimer", "warmup": warmup}
        train(cfg)
        timer = json.loads((Path(tmp) / "step_timer.json").read_text())
        return timer["images_per_s"], timer["seen"]


def plain_run(steps: int, warmup: int, overrides: list[str], batches: Path) -> tuple[float, list]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(steps, Path(tmp), overrides)
    pl.seed_everything(cfg.seed, workers=True)
    loader = PreloadedBatches(str(batches)).train_dataloader()
    model = instantiate(cfg.model).train()
    params = dict(model.named_parameters())
    optimizer = torch.optim.Adam(
        [p for n, p in params.items() if not n.endswith(".quantiles")], lr=cfg.module.optimizer.lr
    )
    aux_optimizer = torch.optim.Adam(
        [p for n, p in params.items() if n.endswith(".quantiles")], lr=cfg.module.aux_optimizer.lr
    )
    criterion = RateDistortionLoss(lmbda=cfg.module.loss.distortion_weight)
    images, start, seen = 0, None, []
    for step, batch in enumerate(loader):
        x = batch["image"]
        seen.append(fingerprint(x))
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        out = model(x)
        loss = criterion(out, x)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.module.clip_grad_norm)
        optimizer.step()
        model.aux_loss().backward()
        aux_optimizer.step()
        if start is not None:
            images += x.shape[0]
    return images / (time.perf_counter() - start), seen


VARIANTS = {"compile": ["module.compile=true"], "channels_last": ["module.channels_last=true"]}


def measure(size: str, repeats: int, work: Path, variants: tuple[str, ...] = (), steps: int | None = None) -> dict:
    spec = SIZES[size]
    steps, warmup, overrides = steps or spec["steps"], spec["warmup"], spec["overrides"]
    if steps <= warmup + 1:
        raise ValueError(f"{size}: --steps must exceed the {warmup} warm-up steps by at least 2")
    batches = work / f"{size}_batches.pt"
    loading_s = preload(steps, overrides, batches)
    plain, framework = [], []
    for _ in range(repeats):
        rate, plain_seen = plain_run(steps, warmup, overrides, batches)
        plain.append(rate)
        rate, framework_seen = framework_run(steps, warmup, overrides, batches)
        framework.append(rate)
        if plain_seen != framework_seen:  # the ratio would compare different work
            raise AssertionError(f"{size}: the two loops saw different batches")
    ratios = [p / f for p, f in zip(plain, framework)]  # framework time per step over plain's
    options = {}
    for name in variants:  # the framework with a speed option, against its eager median
        rates = [framework_run(steps, warmup, [*overrides, *VARIANTS[name]], batches)[0] for _ in range(repeats)]
        options[name] = {
            "images_per_s": rates,
            "speedup_over_eager": statistics.median(rates) / statistics.median(framework),
        }
    step_s = len(torch.load(batches, weights_only=True)[0]) / statistics.median(plain)  # batch size / rate
    return {
        "overrides": overrides,
        "steps": steps,
        "warmup": warmup,
        "images_per_s": {"plain_pytorch": plain, "vcmlab": framework},
        "time_ratio_vcmlab_over_plain": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
        "data_loading_s_per_batch": loading_s,
        "plain_step_s": step_s,
        "data_loading_share_if_not_overlapped": loading_s / (loading_s + step_s),
        "same_batches": True,
        "speed_options": options,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS), help="on size default")
    parser.add_argument(
        "--steps", nargs="*", default=[], metavar="SIZE=N", help="steps per run for a size (warm-up included)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/train_throughput.json"))
    args = parser.parse_args(argv)
    steps = {}
    for item in args.steps:
        size, _, n = item.partition("=")
        if size not in SIZES or not n.isdigit():
            parser.error(f"--steps takes SIZE=N with SIZE one of {list(SIZES)}, got {item!r}")
        steps[size] = int(n)
    with tempfile.TemporaryDirectory() as work:
        sizes = {
            size: measure(
                size, args.repeats, Path(work), tuple(args.variants) if size == "default" else (), steps.get(size)
            )
            for size in args.sizes
        }
    result = {
        "benchmark": "train_throughput lic_hyperprior: vcm-train vs a plain loop on the same preloaded batches",
        "sizes": sizes,
        "target_time_ratio": 1.05,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
