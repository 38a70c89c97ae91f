"""Helpers several test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pytorch_lightning import Callback

from codec_networks import LearnedCodec
from codec_networks.bitstream import unpack
from codec_networks.one_stream import OneStream
from conventional_codecs import PillowCodec
from task_networks import TaskNetwork


def write_image(path, size=(96, 80), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


class FeatureTask(torch.nn.Module):
    """A stand-in task network: two fixed feature levels (strides 1 and 2)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def features(self, x):
        f = self.conv(x)
        return [f, torch.nn.functional.avg_pool2d(f, 2)]


def entropy_decoded_latent(codec: LearnedCodec, data: bytes) -> torch.Tensor:
    """ŷ as the hyperprior decoder gets it from the entropy-coded stream, before the synthesis transform."""
    payload = unpack(data, codec.n_streams, codec.fingerprint)
    model = codec.model
    with OneStream().reading(model, payload.streams[0]):
        z_hat = model.entropy_bottleneck.decompress(
            [b""], torch.Size(codec.latent_shape(payload.height, payload.width))
        )
        indexes = model.gaussian_conditional.build_indexes(model.h_s(z_hat))
        return model.gaussian_conditional.decompress([b""], indexes, z_hat.dtype)


def decoded_latent_and_image(codec: LearnedCodec, data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """(y_hat as the entropy decoder rebuilt it, x_hat) for a LearnedCodec stream of an MSP model."""
    payload = unpack(data, codec.n_streams, codec.fingerprint)
    with torch.no_grad(), OneStream().reading(codec.model, payload.streams[0]):
        out = codec.model.decompress(codec._no_strings(), codec.latent_shape(payload.height, payload.width))
    return out["y_hat"], out["x_hat"]


class TaskStaysFrozen(Callback):
    """Fails the run when a task-network tensor changes or the task leaves eval mode during a training
    step; writes `rank<r>.checked` (the steps it checked) under `out_dir` so a test can see it ran."""

    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)

    def on_fit_start(self, trainer, pl_module):
        self.before = {k: v.detach().clone() for k, v in pl_module.task.state_dict().items()}
        self.checked = 0

    def on_train_batch_end(self, trainer, pl_module, *args):
        task = pl_module.task
        assert not task.training and not any(m.training for m in task.modules()), "the task left eval mode"
        changed = [k for k, v in task.state_dict().items() if not torch.equal(v, self.before[k])]
        assert not changed, f"task tensors changed in a training step: {changed[:5]}"
        self.checked += 1

    def on_fit_end(self, trainer, pl_module):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.checked").write_text(str(self.checked))


class CountingPillowCodec(PillowCodec):
    """PillowCodec that notes every encode in the file $VCMLAB_TEST_ENCODE_LOG and, at the encode
    numbered $VCMLAB_TEST_PAUSE_AT (counted in that file), creates `<log>.paused` and waits there for
    the test to kill the process: a run stopped mid-rate-point, at a known place."""

    def encode(self, image) -> bytes:
        log = os.environ.get("VCMLAB_TEST_ENCODE_LOG")
        if log:
            with open(log, "a") as f:
                f.write("encode\n")
            count = len(Path(log).read_text().splitlines())
            if str(count) == os.environ.get("VCMLAB_TEST_PAUSE_AT"):
                Path(log + ".paused").touch()
                time.sleep(600)
        return super().encode(image)


class OpenImagesOracle(TaskNetwork):
    """A stand-in detector buildable from a config: it 'detects' every `keep`-th annotated box of the
    OpenImages image with this size (stand-in images get unique sizes), so mAP lies strictly between
    0 and 1 for keep > 1, and any image mixed up between shards would change it."""

    def __init__(self, image_dir: str, bbox_csv: str, labels_csv: str, keep: int = 2):
        super().__init__()
        from datamodules.openimages import OpenImagesDataset

        dataset = OpenImagesDataset(image_dir, bbox_csv, labels_csv)
        self.truth = {tuple(it["image"].shape[-2:]): it["targets"] for it in dataset.usable_items()}
        self.keep = keep

    def predict(self, images):
        t = self.truth[tuple(images.shape[-2:])]
        n = len(t["labels"])
        keep = slice(None, None, self.keep)
        return [{"boxes": t["boxes"][keep], "labels": t["labels"][keep], "scores": torch.linspace(1, 0.5, n)[keep]}]


def openimages_stand_ins(folder: Path, count: int, subset_list: Path) -> tuple[list[str], list[str]]:
    """The first `count` images of the MPEG VCM 5k subset as random stand-in JPEGs in folder/img, each
    with its own size (so a size identifies the image), and a subset list naming them; returns the
    image ids and the data overrides of vcm-eval's openimages config that read them. The annotations
    stay the real ones."""
    from datamodules.openimages import read_subset_list

    ids = read_subset_list(subset_list)[:count]
    (folder / "img").mkdir()
    for i, image_id in enumerate(ids):
        write_image(folder / "img" / f"{image_id}.jpg", size=(160 + 8 * i, 120 + 4 * i), seed=i)
    subset = folder / "subset.lst"
    subset.write_text("".join(line + "\n" for line in subset_list.read_text().splitlines()[:count]))
    overrides = [
        "data=openimages",
        f"data.val.subset_list={subset}",
        f"data.val.image_dir={folder / 'img'}",
        "data.train=null",
        "data.num_workers=0",
    ]
    return ids, overrides


def wandb_offline_record(run_dir: Path, *needles: bytes, timeout: float = 60.0) -> bytes:
    """The bytes of the offline W&B run file under run_dir once they hold every needle: W&B's service
    process writes the file asynchronously, so right after a run ends it may hold only its header."""
    deadline = time.monotonic() + timeout
    while True:
        record = b"".join(p.read_bytes() for p in Path(run_dir).glob("wandb/offline-run-*/*.wandb"))
        if all(n in record for n in needles) or time.monotonic() > deadline:
            return record
        time.sleep(0.5)
