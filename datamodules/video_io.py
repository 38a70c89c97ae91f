"""Reading video sequences frame by frame: raw YUV 4:2:0 files named as in the JVET / MPEG test sets,
any video file PyAV opens, and folders of frames. Every source gives its frames as RGB tensors in
[0, 1] through one explicit colour conversion (conventional_codecs.colour, the anchors' own), and YUV
sources also their planes as stored, for metrics that need them.

JVET names: `Name_WxH_fps.yuv`, with `_10bit` (or `_10b`) for 10-bit little-endian samples, e.g.
`BasketballDrive_1920x1080_50.yuv`, `Campfire_3840x2160_30fps_10bit_420.yuv`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from conventional_codecs.colour import ColourFormat, frame_planes
from datamodules.image_io import IMAGE_EXTENSIONS, list_images, load_rgb
from vcmlab.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m")
PYAV_LAYOUTS = {"yuv420p": (8, None), "yuvj420p": (8, "full"), "yuv420p10le": (10, None)}  # bits, range
_SIZE = re.compile(r"_(\d+)x(\d+)(?=_|$)")
_FPS = re.compile(r"_(\d+(?:\.\d+)?)(?:fps|hz)?(?=_|$)", re.IGNORECASE)
_BITS = re.compile(r"_(8|10)b(?:it)?(?=_|$)", re.IGNORECASE)


class VideoReadError(InputError):
    """A video source that cannot be read as declared (size, bit depth, container)."""


@dataclass(frozen=True)
class YUVName:
    width: int
    height: int
    fps: float | None
    bit_depth: int


def parse_yuv_name(path: Path) -> YUVName:
    """Resolution, frame rate and bit depth from a JVET-style file name."""
    stem = path.stem
    size = _SIZE.search(stem)
    if size is None:
        raise VideoReadError(
            f"{path.name}: a raw .yuv file must name its resolution as in JVET test sets (Name_WxH_fps[_10bit].yuv)"
        )
    rest = stem[size.end() :]
    fps = _FPS.match(rest)
    bits = _BITS.search(rest)
    return YUVName(
        int(size.group(1)), int(size.group(2)), float(fps.group(1)) if fps else None, int(bits.group(1)) if bits else 8
    )


class YUVSequence:
    """A raw planar YUV 4:2:0 file: frames read on demand (no whole-file load)."""

    has_planes = True

    def __init__(self, path: str | Path, colour: ColourFormat | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        named = parse_yuv_name(self.path)
        self.width, self.height, self.fps = named.width, named.height, named.fps
        base = colour or ColourFormat()
        self.colour = ColourFormat(base.matrix, base.range, named.bit_depth, "420")
        if self.width % 2 or self.height % 2:
            raise VideoReadError(f"{self.path.name}: 4:2:0 needs an even size, got {self.width}x{self.height}")
        itemsize = 2 if named.bit_depth > 8 else 1
        self.frame_bytes = self.width * self.height * 3 // 2 * itemsize
        size = self.path.stat().st_size
        if size == 0 or size % self.frame_bytes:
            raise VideoReadError(
                f"{self.path.name} has {size} bytes, not a whole number of {self.width}x{self.height} 4:2:0 "
                f"{named.bit_depth}-bit frames ({self.frame_bytes} bytes each): check the resolution and bit depth "
                "in its name"
            )
        self.num_frames = size // self.frame_bytes
        self._check_bit_depth()

    def _check_bit_depth(self) -> None:
        """10-bit little-endian samples have a high byte of 0..3; 8-bit photographs almost never do."""
        with open(self.path, "rb") as f:
            sample = np.frombuffer(f.read(min(self.frame_bytes, 1 << 16)), dtype=np.uint8)
        if self.colour.bit_depth == 8:
            high = sample[1::2]
            if len(high) > 64 and high.max() <= 3 and sample[0::2].max() > 3:
                raise VideoReadError(
                    f"{self.path.name} is named as 8-bit but its samples look like 10-bit little-endian words "
                    "(every second byte is 0..3): add _10bit to its name"
                )
        elif sample.view("<u2").max() > 1023:
            raise VideoReadError(
                f"{self.path.name} is named as 10-bit but holds samples above 1023: it is not 10-bit little-endian"
            )

    def __len__(self) -> int:
        return self.num_frames

    def planes(self, index: int) -> list[np.ndarray]:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.path.name}: frame {index} of {self.num_frames}")
        with open(self.path, "rb") as f:
            f.seek(index * self.frame_bytes)
            data = f.read(self.frame_bytes)
        return self.colour.planes_from_raw(data, self.height, self.width)

    def frame(self, index: int) -> torch.Tensor:
        return self.colour.from_planes(self.planes(index))


class ContainerVideo:
    """Any file PyAV decodes (mp4, mkv, avi, y4m, ...), read on demand; RGB is converted by the
    configured matrix, not by swscale's defaults.

    Opening decodes the file once to count its frames and note each frame's timestamp and whether it
    is a key frame; no frame is kept, so memory does not grow with the sequence. A frame is then decoded
    when asked for: onward from the last one read when it lies ahead, otherwise from the nearest key
    frame at or before it (a seek; sequential decoding from a key frame is the only exact way to reach
    frame k). The planes of the last `cache_frames` frames are kept, so a clip's RGB frames and planes,
    read one after the other, decode once."""

    has_planes = True

    def __init__(self, path: str | Path, colour: ColourFormat | None = None, cache_frames: int = 32):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self._base = colour or ColourFormat()
        self.cache_frames = cache_frames
        first, timestamps, keys = None, [], []
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                self.fps = float(stream.average_rate) if stream.average_rate else None
                for frame in container.decode(stream):
                    if first is None:
                        first = self._planes(frame)
                    timestamps.append(frame.pts)
                    keys.append(frame.key_frame)
        except (av.error.FFmpegError, IndexError, ValueError) as err:
            raise VideoReadError(f"cannot read video {self.path}: {err}") from None
        if first is None:
            raise VideoReadError(f"{self.path} has no video frames")
        self.height, self.width = first[0].shape
        self._count = len(timestamps)
        # seeking needs unique timestamps in display order; without them every backward step restarts
        ordered = None not in timestamps and all(a < b for a, b in zip(timestamps, timestamps[1:]))
        self._timestamps = timestamps if ordered else None
        self._keys = [i for i, key in enumerate(keys) if key] if ordered else [0]
        self._reader = None
        self._cache: OrderedDict[int, list[np.ndarray]] = OrderedDict()

    def _planes(self, frame) -> list[np.ndarray]:
        layout = PYAV_LAYOUTS.get(frame.format.name)
        if layout is None:
            raise VideoReadError(
                f"{self.path}: {frame.format.name} frames; vcmlab reads 4:2:0 video ({', '.join(PYAV_LAYOUTS)})"
            )
        bit_depth, value_range = layout
        self.colour = ColourFormat(self._base.matrix, value_range or self._base.range, bit_depth, "420")
        return frame_planes(frame, bit_depth)

    def __len__(self) -> int:
        return self._count

    def planes(self, index: int) -> list[np.ndarray]:
        if not 0 <= index < self._count:
            raise IndexError(f"{self.path.name}: frame {index} of {self._count}")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        import av

        try:
            return self._decode_to(index)
        except av.error.FFmpegError as err:
            self._close()
            raise VideoReadError(f"cannot decode frame {index} of {self.path}: {err}") from None

    def frame(self, index: int) -> torch.Tensor:
        return self.colour.from_planes(self.planes(index))

    def _decode_to(self, index: int) -> list[np.ndarray]:
        key = max(k for k in self._keys if k <= index)
        if self._reader is None or not key <= self._reader["next"] <= index:  # behind, or a key frame is nearer
            self._open_at(key)
        while True:
            reader = self._reader
            frame = next(reader["frames"], None)
            if frame is None:
                self._close()
                raise VideoReadError(f"{self.path}: the decoder ended before frame {index} of {self._count}")
            at = reader["next"] if self._timestamps is None else self._position(frame.pts)
            if at > index:  # the seek landed past the key frame: from now on decode from the start
                if reader["skip_to"] == 0:
                    self._close()
                    raise VideoReadError(f"{self.path}: frame {index} is not among the frames the decoder returns")
                self._keys = [0]
                self._open_at(0)
                continue
            reader["next"] = at + 1
            if at >= reader["skip_to"]:
                self._cache[at] = self._planes(frame)
                while len(self._cache) > self.cache_frames:
                    self._cache.popitem(last=False)
            if at == index:
                return self._cache[index]

    def _open_at(self, key: int) -> None:
        import av

        self._close()
        container = av.open(str(self.path))
        stream = container.streams.video[0]
        if key and self._timestamps is not None:
            container.seek(self._timestamps[key], backward=True, any_frame=False, stream=stream)
        # after a seek the decoder resumes at a key frame at or before `key`; frames before it are skipped
        self._reader = {"container": container, "frames": container.decode(stream), "next": 0, "skip_to": key}

    def _position(self, pts) -> int:
        if pts not in self._index:
            raise VideoReadError(f"{self.path}: the decoder returned a frame (pts {pts}) the first pass did not see")
        return self._index[pts]

    @cached_property
    def _index(self) -> dict:
        return {pts: i for i, pts in enumerate(self._timestamps)}

    def _close(self) -> None:
        if self._reader is not None:
            self._reader["container"].close()
            self._reader = None

    def __getstate__(self) -> dict:  # DataLoader workers: the open decoder stays behind
        state = dict(self.__dict__, _reader=None, _cache=OrderedDict())
        state.pop("_index", None)
        return state

    def __del__(self) -> None:
        if getattr(self, "_reader", None) is not None:
            self._close()


class FrameFolder:
    """A folder of image files, in name order, as one sequence."""

    has_planes = False  # RGB source: no YUV planes

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._files = list_images(self.path)
        self.fps = None
        first = load_rgb(self._files[0])
        self.height, self.width = first.shape[-2:]

    def __len__(self) -> int:
        return len(self._files)

    def frame(self, index: int) -> torch.Tensor:
        image = load_rgb(self._files[index])
        if image.shape[-2:] != (self.height, self.width):
            raise VideoReadError(
                f"{self._files[index]} is {image.shape[-1]}x{image.shape[-2]}, the sequence {self.width}x{self.height}"
            )
        return image


def open_sequence(path: str | Path, colour: ColourFormat | None = None):
    """A YUVSequence, ContainerVideo or FrameFolder, by what `path` is."""
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path)
    if path.suffix.lower() == ".yuv":
        return YUVSequence(path, colour)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoReadError(f"{path} is an image; a folder of frames is one sequence")
    return ContainerVideo(path, colour)


def list_sequences(folder: str | Path) -> list[Path]:
    """The video sources in `folder`: .yuv and container files, and subfolders holding frames."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder not found: {folder}")

    def is_source(p: Path) -> bool:
        if p.is_dir():
            return any(q.suffix.lower() in IMAGE_EXTENSIONS for q in p.iterdir())
        return p.suffix.lower() in (".yuv", *VIDEO_EXTENSIONS)

    found = [p for p in sorted(folder.iterdir()) if is_source(p)]
    if not found:
        raise FileNotFoundError(f"no video files (.yuv, {', '.join(VIDEO_EXTENSIONS)}) or frame folders in {folder}")
    return found
