"""A short vcm-train run under torch.profiler: a trace and where a training step's time goes.

    python -m benchmarks.profile_train --out bench-results/profile [--steps 12] [overrides ...]

Writes <out>/trace.json (open it in https://ui.perfetto.dev or chrome://tracing) and <out>/profile.json,
and prints the top operators by self CPU time and the share of the training steps' wall time spent in
the forward pass, backward pass, main optimizer step (with clipping), aux step and logging. These are
the record_function labels in lightning_modules/codec_module.py. The rest, "data loading and loop",
is the time between steps: fetching the batch, Lightning's loop and the callbacks. Steps before
--warmup are left out of the shares.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import open_dict
from torch.profiler import ProfilerActivity, profile, schedule

from vcmlab.compose import compose_config
from vcmlab.train import train

warnings.filterwarnings("ignore")

PARTS = ("vcm/forward", "vcm/backward", "vcm/optimizer_step", "vcm/aux_step", "vcm/logging")


class ProfiledSteps(pl.Callback):
    """Steps the profiler's schedule and times the profiled (post-warm-up) steps end to end."""

    profiler = None  # set by main(): one profiler for the run
    finished = None  # the instance, once its run has ended

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        ProfiledSteps.profiler.step()
        if self.start is not None:
            self.steps += 1
            self.end = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        ProfiledSteps.finished = self


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/profile"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=icm_e2e")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(
        [
            "experiment=lic_hyperprior",
            "logger=csv",
            f"trainer.max_steps={args.steps}",
            "+trainer.limit_val_batches=0",
            "+trainer.enable_checkpointing=false",
            "~callbacks.model_checkpoint",
            "~callbacks.last_checkpoint",
            *args.overrides,
        ],
        args.out / "run",
    )
    with open_dict(cfg):
        cfg.callbacks.profiled = {"_target_": "benchmarks.profile_train.ProfiledSteps", "warmup": args.warmup}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    # record from the first post-warm-up step to the end (the schedule counts profiler.step() calls)
    steps = schedule(wait=max(args.warmup - 1, 0), warmup=1, active=args.steps - args.warmup, repeat=1)
    # the callback is built from its import path: under `python -m` that is not this __main__ module
    callback = importlib.import_module("benchmarks.profile_train").ProfiledSteps
    with profile(activities=activities, schedule=steps) as prof:
        callback.profiler = prof
        train(cfg)
    prof.export_chrome_trace(str(args.out / "trace.json"))
    averages = prof.key_averages()
    timer = callback.finished
    wall_us = 1e6 * (timer.end - timer.start)
    parts = {name: sum(e.cpu_time_total for e in averages if e.key == name) / wall_us for name in PARTS}
    parts["data loading and loop"] = max(0.0, 1 - sum(parts.values()))
    top = sorted((e for e in averages if not e.key.startswith("vcm/")), key=lambda e: -e.self_cpu_time_total)[:15]
    result = {
        "steps_profiled": timer.steps,
        "step_wall_s": wall_us / 1e6 / timer.steps,
        "shares": parts,
        "top_operators_self_cpu_s": {e.key: e.self_cpu_time_total / 1e6 for e in top},
        "trace": str(args.out / "trace.json"),
        "overrides": args.overrides,
    }
    (args.out / "profile.json").write_text(json.dumps(result, indent=2) + "\n")
    print(averages.table(sort_by="self_cpu_time_total", row_limit=15))
    print("share of a training step:")
    for name, share in parts.items():
        print(f"  {name:24s} {100 * share:5.1f}%")
    print(f"trace: {args.out / 'trace.json'}")


if __name__ == "__main__":
    main()
