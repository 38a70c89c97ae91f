"""Training throughput of `lic_hyperprior` through vcm-train vs a plain PyTorch loop.

The plain loop follows CompressAI's examples/train.py: same model, data, batch size, loss
(λ·255²·MSE + bpp), main + aux Adam optimizers and gradient clipping. Both run in this process,
interleaved (plain, framework, plain, framework), on the same DataLoader settings; each figure is the
best of its repeats, timed after warm-up steps. Validation is off in both: this measures training.

    python -m benchmarks.train_throughput --steps 60 --out bench-results/train_throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from compressai.losses import RateDistortionLoss
from hydra.utils import instantiate
from omegaconf import open_dict

from vcmlab.compose import compose_config
from vcmlab.train import train

warnings.filterwarnings("ignore")


def compose_cfg(steps: int, out: Path, overrides: list[str]):
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
    with open_dict(cfg):
        cfg.callbacks.timer = {"_target_": "benchmarks.train_throughput.StepTimer", "warmup": 10}
    return cfg


class StepTimer(pl.Callback):
    """Images per second from the start of batch `warmup` to the end of the last batch, written to
    <run dir>/step_timer.json."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start, self.images = None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.images += batch["image"].shape[0]

    def on_train_end(self, trainer, pl_module):
        rate = self.images / (time.perf_counter() - self.start)
        (Path(trainer.default_root_dir) / "step_timer.json").write_text(json.dumps({"images_per_s": rate}))


def framework_run(steps: int, warmup: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(steps, Path(tmp), overrides)
        with open_dict(cfg):
            cfg.callbacks.timer.warmup = warmup
        train(cfg)
        return json.loads((Path(tmp) / "step_timer.json").read_text())["images_per_s"]


def plain_run(steps: int, warmup: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(steps, Path(tmp), overrides)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model = instantiate(cfg.model).train()
    params = dict(model.named_parameters())
    optimizer = torch.optim.Adam(
        [p for n, p in params.items() if not n.endswith(".quantiles")], lr=cfg.module.optimizer.lr
    )
    aux_optimizer = torch.optim.Adam(
        [p for n, p in params.items() if n.endswith(".quantiles")], lr=cfg.module.aux_optimizer.lr
    )
    criterion = RateDistortionLoss(lmbda=cfg.module.loss.distortion_weight)
    step, images, start = 0, 0, None
    while step < steps:
        for batch in datamodule.train_dataloader():
            if step == warmup:
                start = time.perf_counter()
            x = batch["image"]
            optimizer.zero_grad()
            aux_optimizer.zero_grad()
            out = model(x)
            loss = criterion(out, x)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.module.clip_grad_norm)
            optimizer.step()
            model.aux_loss().backward()
            aux_optimizer.step()
            step += 1
            if start is not None:
                images += x.shape[0]
            if step == steps:
                break
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-results/train_throughput.json"))
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides applied to both, e.g. model.N=128 data.crop_size=256"
    )
    args = parser.parse_args()

    plain, framework = [], []
    for _ in range(args.repeats):
        plain.append(plain_run(args.steps, args.warmup, args.overrides))
        framework.append(framework_run(args.steps, args.warmup, args.overrides))
    best_plain, best_framework = max(plain), max(framework)
    result = {
        "benchmark": "train_throughput lic_hyperprior",
        "images_per_s": {"plain_pytorch": best_plain, "vcmlab": best_framework},
        "ratio_vcmlab_over_plain": best_framework / best_plain,
        "overhead_percent": 100 * (1 - best_framework / best_plain),
        "target_overhead_percent": 5.0,
        "runs": {"plain_pytorch": plain, "vcmlab": framework},
        "steps": args.steps,
        "warmup": args.warmup,
        "overrides": args.overrides,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
