"""Image evaluation at the protocol's scale. Every (rate point, image) of this run's shard is coded in
`workers` processes (`workers=1`: this one), each image leaving a bitstream and a record
(records.py); a rerun into the same run directory (same `run_name`) keeps every verified record and
codes only the rest; the rate points' outputs are then written from the records, in data set order.

Results do not depend on `workers`: every coding process uses `threads_per_worker` torch threads
(floating-point sums, hence latents and bitstreams, can change with the thread count), and figures
come only from records. A shard (`num_shards` > 1) writes records and its manifest; `merge` (merge.py)
turns the shards into the outputs one run writes.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from datamodules.image_datasets import item_or_none
from vcmlab.errors import ConfigError
from vcmlab.evaluation.manifest import (
    check_resumable,
    code_digest,
    fingerprint,
    results_config,
    shard_indices,
    write_manifest,
)
from vcmlab.evaluation.outputs import TIMING_COLUMNS, log_shard, write_outputs
from vcmlab.evaluation.rate_points import build_rate_points
from vcmlab.evaluation.records import read_verified_record, source_sha256
from vcmlab.evaluation.runner import code_image, point_info, write_rate_point
from vcmlab.evaluation.task_scores import TaskScorer

log = logging.getLogger(__name__)


def evaluation_split(cfg: DictConfig):
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    return datamodule.datasets[cfg.split if cfg.split in datamodule.datasets else "val"]


def make_scorer(cfg: DictConfig, cache_dir: Path | None = None) -> TaskScorer | None:
    if not cfg.get("task"):
        return None
    task = instantiate(cfg.task)
    return TaskScorer(task, cfg.get("metric_reference", "labels"), cfg.get("pseudo_gt_score", 0.5), cache_dir)


class ImageCoder:
    """What one coding process holds: the split, the rate points and the task scorer."""

    def __init__(self, cfg: DictConfig, out_root: Path, dataset=None):
        self.out_root = out_root
        self.dataset = dataset if dataset is not None else evaluation_split(cfg)
        self.scorer = make_scorer(cfg, out_root / "uncompressed_predictions")
        # built outside inference mode: update() makes CDF and bound buffers that a latent refiner's
        # autograd must be able to use
        self.points = {p.name: p for p in build_rate_points(cfg.codec, cfg.device)}
        self.yuv_matrix = cfg.get("yuv_psnr_matrix", "bt601")

    def code(self, point_name: str, index: int) -> tuple[dict | None, bool]:
        """(record, whether it was coded now) of image `index`; (None, False) for a skipped image."""
        item = item_or_none(self.dataset, index)
        if item is None:
            return None, False
        point_dir = self.out_root / point_name
        record = read_verified_record(point_dir, item["name"])
        if record is not None and record.get("index") == index and record.get("source_sha256") == source_sha256(item):
            return record, False
        with torch.inference_mode():
            return code_image(self.points[point_name], item, index, point_dir, self.scorer, self.yuv_matrix), True


_CODER: ImageCoder | None = None  # a worker process's


def _start_worker(config: dict, out_root: str, threads: int) -> None:
    global _CODER
    torch.set_num_threads(threads)
    _CODER = ImageCoder(OmegaConf.create(config), Path(out_root))


def _code(job: tuple[str, int]) -> tuple[dict | None, bool]:
    return _CODER.code(*job)


class Tally:
    """Records per rate point, skipped images, and how the coding time was spent."""

    def __init__(self, names: list[str]):
        self.records: dict[str, dict[int, dict]] = {n: {} for n in names}
        self.skipped: set[int] = set()
        self.coded = self.reused = 0
        self.seconds = dict.fromkeys(TIMING_COLUMNS, 0.0)
        self.finished: list[float] = []  # when each result came in

    def add(self, name: str, index: int, record: dict | None, coded: bool) -> None:
        self.finished.append(time.perf_counter())
        if record is None:
            self.skipped.add(index)
            return
        self.records[name][index] = record
        if coded:
            self.coded += 1
            for k in TIMING_COLUMNS:
                self.seconds[k] += record["row"][k]
        else:
            self.reused += 1

    def steady_rate(self, workers: int) -> float | None:
        """Images per second once every worker has delivered a first result (worker start-up left out)."""
        done = self.finished[workers - 1 :]
        return (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else None

    def ordered(self, name: str) -> list[dict]:
        return [self.records[name][i] for i in sorted(self.records[name])]


def _check_scale_settings(cfg: DictConfig) -> tuple[int, int, int, int]:
    values = {k: cfg.get(k, d) for k, d in (("workers", 1), ("threads_per_worker", 1), ("shard", 0), ("num_shards", 1))}
    for key, value in values.items():
        if not isinstance(value, int) or value < (0 if key == "shard" else 1):
            raise ConfigError(f"{key} must be an integer >= {0 if key == 'shard' else 1}, got {value!r}")
    shard_indices(0, values["shard"], values["num_shards"])  # checks shard < num_shards
    return tuple(values.values())


def code_all(cfg: DictConfig, coder: ImageCoder, indices: list[int], out_root: Path) -> Tally:
    """Every (rate point, image) of `indices`, one progress bar per rate point."""
    workers, threads, _, _ = _check_scale_settings(cfg)
    tally = Tally(list(coder.points))
    if workers == 1:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for name in coder.points:
                for index in tqdm(indices, desc=name, unit="img"):
                    tally.add(name, index, *coder.code(name, index))
        finally:
            torch.set_num_threads(previous)
        return tally
    config = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}
    context = multiprocessing.get_context("spawn")  # fork is unsafe under torch's thread pools
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(config, str(out_root), threads)
    )
    try:
        # every job queued at once, in rate-point order: no worker idles at the end of a rate point
        futures = {n: {pool.submit(_code, (n, i)): i for i in indices} for n in coder.points}
        for name, jobs in futures.items():
            with tqdm(total=len(jobs), desc=name, unit="img") as bar:
                for future in as_completed(jobs):
                    tally.add(name, jobs[future], *future.result())
                    bar.update()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return tally


def evaluate_images(cfg: DictConfig, dataset) -> list[dict]:
    """This run's shard of an image evaluation; the rate points' summaries (none for a shard of several)."""
    start = time.perf_counter()
    _, _, shard, num_shards = _check_scale_settings(cfg)
    out_root = Path(cfg.paths.output_dir)
    coder = ImageCoder(cfg, out_root, dataset)
    config, code = results_config(cfg), code_digest()
    manifest = {
        "fingerprint": fingerprint(config, code),
        "config": config,
        "code": code,
        "shard": shard,
        "num_shards": num_shards,
        "label": cfg.get("label") or cfg.codec.kind,
        "yuv_psnr_matrix": coder.yuv_matrix,
        "scoring": coder.scorer.scoring if coder.scorer is not None else None,
        "points": [point_info(p) for p in coder.points.values()],
        "complete": False,
    }
    if check_resumable(out_root, manifest):
        log.info("%s: resuming an earlier run of this evaluation (verified records are kept)", out_root)
    write_manifest(out_root, manifest)
    indices = shard_indices(len(dataset), shard, num_shards)
    coding_start = time.perf_counter()
    tally = code_all(cfg, coder, indices, out_root)
    coding_wall = time.perf_counter() - coding_start
    wall = time.perf_counter() - start
    busy = sum(tally.seconds.values()) or 1.0
    shares = ", ".join(f"{k.removesuffix('_s')} {100 * v / busy:.0f}%" for k, v in tally.seconds.items())
    log.info(
        "%d images x %d rate points in %.1f s wall (%d coded, %d kept from an earlier run); coding time: %s",
        len(indices) - len(tally.skipped),
        len(coder.points),
        wall,
        tally.coded,
        tally.reused,
        shares,
    )
    manifest |= {
        "complete": True,
        "records": {n: len(r) for n, r in tally.records.items()},
        "skipped": sorted(tally.skipped),
        "run": {
            "wall_s": wall,
            "coding_wall_s": coding_wall,  # worker start-up included
            "steady_images_per_s": tally.steady_rate(cfg.get("workers", 1)),
            "workers": cfg.get("workers", 1),
            "coded": tally.coded,
            "reused": tally.reused,
            "coding_s": tally.seconds,
        },
    }
    write_manifest(out_root, manifest)
    if num_shards > 1:
        log.info("shard %d of %d done: combine the shards with vcm-eval-merge RUN_DIRS...", shard, num_shards)
        log_shard(cfg, manifest)
        return []
    summaries = []
    for name, point in coder.points.items():
        summary = write_rate_point(
            out_root / name,
            point_info(point),
            tally.ordered(name),
            manifest["scoring"],
            len(tally.skipped),
            coder.yuv_matrix,
        )
        log.info("%s: %s", name, {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
        summaries.append(summary)
    write_outputs(cfg, summaries, out_root, manifest["label"])
    return summaries
