"""Training pairs for NN-VVC's inter machine adapter (method 3): (original inter frame, the frame as
NN-VVC decodes it, QP).

Clips of `gop` frames from the videos of `videos` (a video datamodule: its training sequences for
training, its validation ones for validation) are coded by NN-VVC at every QP of `qps`: the intra
frame by the learned codec of `lic_checkpoint` (its IHA from `iha_checkpoint`, if any), the others by
x265 from the regenerated reference, exactly as `vcm-eval codec=nnvvc` codes them. Without a
`lic_checkpoint` the reference is the original intra frame (x265 LDP with a QP-0 intra picture), for
tests and for an IMA of plain x265. The decoded inter frames are cached on disk, keyed by the codec's
settings, the checkpoints' contents, the sequence and the clip; training draws random crops of them,
validation takes centre crops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch.utils.data import Dataset

from codec_networks import LearnedCodec
from codec_networks.nnvvc import NNVVCCodec
from conventional_codecs.colour import ColourFormat
from conventional_codecs.seeded_reference import SeededReferenceCodec
from datamodules.base import ImageDataModule, check_count
from datamodules.crops import crop_window
from datamodules.video_io import open_sequence
from vcmlab.checkpoints import load_adapter, load_codec
from vcmlab.errors import ConfigError, InputError


def file_digest(path: str | Path | None) -> str:
    if path is None:
        return "none"
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class InterFrameCoder:
    """Codes a clip's inter frames at one QP as NN-VVC does; `key` names the result in the cache."""

    def __init__(self, qp: int, lic_checkpoint, iha_checkpoint, intra_qp: int, preset: str, colour: dict | None):
        self.inter = SeededReferenceCodec(qp, intra_qp, preset, colour)
        self.nnvvc = None
        if lic_checkpoint is not None:
            iha = load_adapter(iha_checkpoint) if iha_checkpoint else None
            self.nnvvc = NNVVCCodec(LearnedCodec(load_codec(lic_checkpoint)), self.inter, iha)
        elif iha_checkpoint:
            raise ConfigError("data.iha_checkpoint needs data.lic_checkpoint: the IHA refines the learned intra frame")
        digests = {"lic": file_digest(lic_checkpoint), "iha": file_digest(iha_checkpoint)}
        settings = {"inter": self.inter.settings, **digests}
        self.key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def decoded_inter_frames(self, clip: torch.Tensor) -> torch.Tensor:
        if self.nnvvc is not None:
            return self.nnvvc.decode(self.nnvvc.encode(clip))[1:]
        return self.inter.decode(clip[0], self.inter.encode(clip[0], clip[1:]))


class InterFrameDataset(Dataset):
    def __init__(
        self,
        sources: list[Path],
        gop: int,
        clips: int,
        coders: dict[int, InterFrameCoder],
        cache_dir,
        crop_size: int,
        train: bool,
        colour: ColourFormat | None = None,
    ):
        self.sequences = [open_sequence(p, colour) for p in sources]
        self.names = [Path(p).stem for p in sources]
        self.coders, self.cache_dir, self.crop_size, self.train = coders, Path(cache_dir), crop_size, train
        self.gop = gop
        self.items = []  # (sequence, clip start, qp, frame in the clip >= 1)
        for i, seq in enumerate(self.sequences):
            if len(seq) < gop:
                raise InputError(f"{sources[i]} has {len(seq)} frames, fewer than data.gop={gop}")
            if min(seq.height, seq.width) < crop_size:
                raise InputError(f"{sources[i]} is {seq.width}x{seq.height}, smaller than the crop {crop_size}")
            step = max(gop, (len(seq) - gop) // max(clips - 1, 1)) if clips > 1 else gop
            starts = list(range(0, len(seq) - gop + 1, step))[:clips]
            self.items += [(i, s, qp, t) for s in starts for qp in coders for t in range(1, gop)]

    def __len__(self) -> int:
        return len(self.items)

    def clip(self, i: int, start: int) -> torch.Tensor:
        return torch.stack([self.sequences[i].frame(start + t) for t in range(self.gop)])

    def decoded(self, i: int, start: int, qp: int) -> torch.Tensor:
        """The clip's decoded inter frames (gop - 1, 3, H, W), uint8, from the cache or coded now."""
        path = self.cache_dir / f"inter_{self.coders[qp].key}" / f"{self.names[i]}_{start}_gop{self.gop}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True)
        frames = self.coders[qp].decoded_inter_frames(self.clip(i, start))
        decoded = (frames.clamp(0, 1) * 255).round().to(torch.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        torch.save(decoded, tmp)
        os.replace(tmp, path)  # readers never see half a file
        return decoded

    def __getitem__(self, index: int) -> dict:
        i, start, qp, t = self.items[index]
        original = self.sequences[i].frame(start + t)
        decoded = self.decoded(i, start, qp)[t - 1].float() / 255
        top, left = crop_window(*original.shape[-2:], self.crop_size, random=self.train)
        window = (..., slice(top, top + self.crop_size), slice(left, left + self.crop_size))
        return {"image": original[window], "decoded": decoded[window], "qp": torch.tensor(float(qp))}


class InterFramesDataModule(ImageDataModule):
    stacked = ("image", "decoded", "qp")

    def __init__(
        self,
        videos,  # a video datamodule (datamodules.SampleVideoDataModule, VideoFolderDataModule): the sequences
        qps: list[int] = (27, 32, 37, 42),
        gop: int = 4,
        clips_per_sequence: int = 4,
        val_clips_per_sequence: int = 1,
        crop_size: int = 128,
        lic_checkpoint: str | None = None,
        iha_checkpoint: str | None = None,
        intra_qp: int = 0,
        preset: str = "medium",
        cache_dir: str = "data/inter_frames",
        batch_size: int = 8,
        val_batch_size: int = 8,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, val_batch_size, num_workers)
        if not qps:
            raise ConfigError("data.qps: give at least one x265 QP")
        self.videos, self.qps = videos, [int(q) for q in qps]
        self.gop = check_count(gop, "gop")
        if self.gop < 2:
            raise ConfigError("data.gop must be at least 2: a GOP needs inter frames")
        self.clips = {
            "train": check_count(clips_per_sequence, "clips_per_sequence"),
            "val": check_count(val_clips_per_sequence, "val_clips_per_sequence"),
        }
        self.crop_size = check_count(crop_size, "crop_size")
        self.coding = (lic_checkpoint, iha_checkpoint, intra_qp, preset)
        self.cache_dir = cache_dir

    def make_datasets(self, stage):
        colour = self.videos.colour  # the sequences' stored format, which x265 codes them in
        coders = {qp: InterFrameCoder(qp, *self.coding, dataclasses.asdict(colour)) for qp in self.qps}
        return {
            split: InterFrameDataset(
                paths, self.gop, self.clips[split], coders, self.cache_dir, self.crop_size, split == "train", colour
            )
            for split, paths in self.videos.sources().items()
            if split in self.clips
        }
