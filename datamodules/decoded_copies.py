"""Training images after a round trip through a conventional codec, as lossless coders meet them.

Much of what is stored losslessly was lossy once: JPEG-decoded photographs, frames extracted from
compressed video. Such images have structure that camera photographs lack (in frames decoded from 4:2:0
video and converted to RGB the way FFmpeg hands frames out, R−G and B−G are constant over each aligned
2x2 block), and a statistical model learns it only from examples. `decoded_copies` adds, for every
training image, one copy per kind, made on first use and kept in memory (per loader worker):
- `jpeg`: Pillow's JPEG at quality 90 (its default 4:2:0 subsampling), decoded by Pillow;
- `h264`: one libx264 intra frame (CRF 18, yuv420p, through PyAV), converted back to RGB by FFmpeg's
  default conversion (`to_ndarray("rgb24")`), as frame extractors do.
Never of evaluation images: the copies are made from the training split only.
"""

from __future__ import annotations

import io

import av
import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset

from conventional_codecs.base import from_uint8, pad_to_even, to_uint8
from datamodules.image_datasets import BadImagePolicy, ImageFileDataset
from vcmlab.errors import ConfigError

JPEG_QUALITY = 90
H264_OPTIONS = {"crf": "18", "preset": "medium"}


def jpeg_copy(rgb: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=JPEG_QUALITY)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def h264_copy(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    padded = pad_to_even(rgb)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = padded.shape[1], padded.shape[0], "yuv420p"
        stream.options = H264_OPTIONS
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")), *stream.encode(None)]:
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer, format="h264") as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return frame[:height, :width]


KINDS = {"jpeg": jpeg_copy, "h264": h264_copy}


def check_kinds(kinds) -> tuple[str, ...]:
    kinds = tuple(kinds or ())
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or len(set(kinds)) != len(kinds):
        raise ConfigError(f"data.decoded_copies takes distinct kinds from {sorted(KINDS)}, got {list(kinds)}")
    return kinds


class DecodedCopiesDataset(ImageFileDataset):
    """Every image of `paths` once per kind, decoded from that codec (cached after the first read)."""

    def __init__(self, paths, kinds, *args, **kwargs):
        self.kinds = check_kinds(kinds)
        super().__init__([p for p in paths for _ in self.kinds], *args, **kwargs)
        self.cache: dict[int, tuple[torch.Tensor, str]] = {}

    def read(self, index: int) -> tuple[torch.Tensor, str]:
        index %= len(self.paths)
        if index not in self.cache:
            image, name = super().read(index)
            kind = self.kinds[index % len(self.kinds)]
            self.cache[index] = from_uint8(KINDS[kind](to_uint8(image))), f"{name}_{kind}"
        return self.cache[index]


def training_set(paths, kinds, crop_size: int, repeats: int, on_bad_image: BadImagePolicy) -> Dataset:
    """Random crops of the images of `paths`, and of one decoded copy of each per kind of `kinds`."""
    images = ImageFileDataset(paths, crop_size, True, repeats, on_bad_image)
    if not kinds:  # validated by DecodedCopiesDataset (and the datamodules, at construction)
        return images
    return ConcatDataset([images, DecodedCopiesDataset(paths, kinds, crop_size, True, repeats, on_bad_image)])
