import importlib.util
import sys

import pytest
import torch

from task_networks import TorchvisionDetector
from task_networks.mmdet_detector import MMDetDetector


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return TorchvisionDetector(
        arch="fasterrcnn_resnet50_fpn", num_classes=5, detector_kwargs={"min_size": 128, "max_size": 128}
    )


def test_random_initialisation_warns_loudly():
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        TorchvisionDetector(arch="fasterrcnn_mobilenet_v3_large_fpn", num_classes=3)


def test_frozen_and_always_in_eval_mode(detector):
    assert not any(p.requires_grad for p in detector.parameters())
    detector.train()
    assert not detector.training and not detector.detector.training


def test_feature_loss_sends_gradients_to_the_decoded_image_only(detector):
    x = torch.rand(2, 3, 96, 96)
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    loss = detector.task_loss(x_hat, x)
    loss.backward()
    assert loss > 0 and x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert detector.task_loss(x, x) == 0
    assert all(p.grad is None for p in detector.parameters())


def test_detector_loss_with_ground_truth_boxes(detector):
    x = torch.rand(2, 3, 96, 96, requires_grad=True)
    targets = [
        {
            "boxes": torch.tensor([[10.0, 10.0, 60.0, 70.0]]),
            "labels": torch.tensor([1]),
            "is_group_of": torch.tensor([False]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    loss = detector.task_loss(x, x.detach(), targets)  # mode auto + targets -> detector losses
    loss.backward()
    assert torch.isfinite(loss) and x.grad.abs().sum() > 0
    assert not detector.detector.training  # back in eval mode afterwards


def test_detector_loss_without_targets_is_a_clear_error():
    det = TorchvisionDetector(arch="fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, loss="detector")
    with pytest.raises(ValueError, match="needs ground-truth boxes"):
        det.task_loss(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), None)


def test_predict_returns_detections_per_image(detector):
    out = detector.predict(torch.rand(2, 3, 96, 96))
    assert len(out) == 2 and set(out[0]) >= {"boxes", "labels", "scores"}


def test_weights_load_from_a_local_file_and_bad_files_are_refused(detector, tmp_path):
    path = tmp_path / "det.pth"
    torch.save({"model": detector.detector.state_dict()}, path)
    loaded = TorchvisionDetector(arch="fasterrcnn_resnet50_fpn", num_classes=5, checkpoint=str(path))
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(loaded.detector.state_dict()[key], detector.detector.state_dict()[key])
    with pytest.raises(ValueError, match="does not fit"):
        TorchvisionDetector(arch="fasterrcnn_resnet50_fpn", num_classes=91, checkpoint=str(path))
    with pytest.raises(FileNotFoundError, match="not found"):
        TorchvisionDetector(checkpoint=str(tmp_path / "missing.pth"))
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="truncated, corrupt or not a PyTorch checkpoint"):
        TorchvisionDetector(num_classes=5, checkpoint=str(path))


def test_unknown_architecture_and_loss_mode():
    with pytest.raises(ValueError, match="unknown detector architecture"):
        TorchvisionDetector(arch="yolo")
    with pytest.raises(ValueError, match="auto, detector or features"):
        TorchvisionDetector(loss="mse")


def test_mmdet_missing_names_what_to_install(monkeypatch):
    if importlib.util.find_spec("mmdet") is not None:  # installed here: make its import fail as without it
        monkeypatch.setitem(sys.modules, "mmcv.ops", None)
    with pytest.raises(ImportError, match="make install-mmdet"):
        MMDetDetector(config="faster-rcnn.py")


def test_mask_rcnn_own_loss_with_instance_masks():
    det = TorchvisionDetector(
        arch="maskrcnn_resnet50_fpn", num_classes=3, detector_kwargs={"min_size": 96, "max_size": 96}
    )
    x = torch.rand(1, 3, 96, 96, requires_grad=True)
    mask = torch.zeros(1, 96, 96, dtype=torch.uint8)
    mask[0, 20:60, 10:50] = 1
    target = {"boxes": torch.tensor([[10.0, 20.0, 50.0, 60.0]]), "labels": torch.tensor([2])}
    with pytest.raises(ValueError, match="instance masks"):
        det.task_loss(x, x.detach(), [target])
    loss = det.task_loss(x, x.detach(), [{**target, "masks": mask}])
    loss.backward()
    assert torch.isfinite(loss) and x.grad.abs().sum() > 0
