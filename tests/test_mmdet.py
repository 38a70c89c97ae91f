"""The mmdet task-network backend against mmdet itself (`make test-mmdet`, after `make install-mmdet`).

Random weights throughout (no detector weights exist on any registry); score_thr 0 makes a random
detector return boxes, and a small test scale keeps CPU inference to a second or two.
"""

import importlib.util
import json

import numpy as np
import pytest
import torch

from datamodules.image_io import load_rgb
from datamodules.openimages import coco_category_names
from datamodules.sample import VAL_IMAGES, sample_image_paths
from tests.conftest import SHARED_DATA
from tests.helpers import openimages_stand_ins

pytestmark = [
    pytest.mark.mmdet,
    pytest.mark.skipif(importlib.util.find_spec("mmdet") is None, reason="mmdet is not installed: make install-mmdet"),
]

FASTER = "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"
MASK = "mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"
SMALL = {"model.test_cfg.rcnn.score_thr": 0.0, "test_dataloader.dataset.pipeline.1.scale": (320, 256)}
OIV6 = SHARED_DATA / "oiv6-mpeg-vcm"


def build(config=FASTER, **kwargs):
    from task_networks.mmdet_detector import MMDetDetector

    torch.manual_seed(0)
    return MMDetDetector(config, cfg_options=dict(SMALL), **kwargs)


@pytest.fixture(scope="module")
def detector():
    return build()


@pytest.fixture(scope="module")
def photo_file():
    return sample_image_paths(VAL_IMAGES[:1])[0]  # a real photograph (chelsea.png)


def test_predict_is_mmdets_own_inference_on_the_image_file(detector, photo_file):
    from mmdet.apis import inference_detector

    ours = detector.predict(load_rgb(photo_file)[None])[0]
    theirs = inference_detector(detector.model, str(photo_file)).pred_instances  # mmcv reads the file (BGR)
    assert len(theirs.bboxes) > 0
    torch.testing.assert_close(ours["boxes"], theirs.bboxes, rtol=0, atol=1e-4)
    torch.testing.assert_close(ours["scores"], theirs.scores, rtol=0, atol=1e-6)
    names = coco_category_names()
    mmdet_names = detector.model.dataset_meta["classes"]
    assert [names[i] for i in ours["labels"].tolist()] == [mmdet_names[i] for i in theirs.labels.tolist()]
    h, w = load_rgb(photo_file).shape[-2:]
    assert ours["boxes"][:, 2].max() <= w and ours["boxes"][:, 3].max() <= h  # pixels of the image itself


def test_label_mapping_round_trips_and_refuses_classes_the_data_set_lacks(detector):
    names = coco_category_names()
    for i, name in enumerate(detector.detector_classes):
        dataset_id = int(detector.to_dataset[i])
        assert names[dataset_id].replace(" ", "_") == name.replace(" ", "_")
        assert detector.to_detector[dataset_id] == i
    assert len(set(detector.to_dataset.tolist())) == 80
    with pytest.raises(ValueError, match="not in the data set's class list"):
        detector._build_label_map(detector.detector_classes, ["__background__", "person", "car"])


def test_frozen_and_always_in_eval_mode(detector):
    assert not any(p.requires_grad for p in detector.parameters())
    detector.train()
    assert not detector.training and not any(m.training for m in detector.model.modules())


@pytest.mark.parametrize("loss", ["features", "detector"])
def test_task_losses_send_gradients_to_x_hat_only(detector, loss):
    x = load_rgb(sample_image_paths(VAL_IMAGES[:1])[0])[None, :, :128, :160]
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    targets = [{"boxes": torch.tensor([[20.0, 10.0, 120.0, 100.0]]), "labels": torch.tensor([17])}]  # cat
    value = build(loss=loss).task_loss(x_hat, x, targets if loss == "detector" else None)
    value.backward()
    assert value > 0 and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in detector.parameters())
    if loss == "features":
        assert detector.task_loss(x, x) == 0


def test_detector_loss_refuses_labels_it_cannot_learn_and_mask_rcnn_without_masks():
    x = torch.rand(1, 3, 64, 64)
    box = torch.tensor([[4.0, 4.0, 40.0, 40.0]])
    with pytest.raises(ValueError, match=r"labels \[12\] are not among"):  # 12 is 'N/A' in the COCO list
        build(loss="detector").task_loss(x, x, [{"boxes": box, "labels": torch.tensor([12])}])
    mask_rcnn = build(MASK, loss="detector")
    with pytest.raises(ValueError, match="instance masks"):
        mask_rcnn.task_loss(x, x, [{"boxes": box, "labels": torch.tensor([1])}])
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 4:40, 4:40] = 1
    x_hat = x.clone().requires_grad_()
    mask_rcnn.task_loss(x_hat, x, [{"boxes": box, "labels": torch.tensor([1]), "masks": masks}]).backward()
    assert x_hat.grad.abs().sum() > 0


def test_an_mmdet_checkpoint_loads_safely_with_its_classes(detector, photo_file, tmp_path):
    state = {
        k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in detector.model.state_dict().items()
    }
    classes = tuple(detector.detector_classes)
    path = tmp_path / "faster.pth"
    torch.save({"meta": {"dataset_meta": {"classes": classes}}, "state_dict": state}, path)
    loaded = build(checkpoint=str(path))
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in state.items())
    assert tuple(loaded.model.dataset_meta["classes"]) == classes
    image = load_rgb(photo_file)[None]
    assert not torch.equal(loaded.predict(image)[0]["scores"], detector.predict(image)[0]["scores"])

    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))

    torch.save({"state_dict": state, "payload": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match="(?i)weights_only|unsafe|not allowed|refus"):
        build(checkpoint=str(tmp_path / "evil.pth"))


def test_missing_config_names_where_it_looked():
    with pytest.raises(FileNotFoundError, match="faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"):
        build("faster_rcnn/no-such-config.py")


@pytest.mark.skipif(not OIV6.is_dir(), reason="../shared/data/oiv6-mpeg-vcm not present")
def test_vcm_eval_writes_predictions_the_openimages_and_coco_evaluators_score(make_cfg, tmp_path):
    from vcmlab.evaluation import evaluate

    ids, data = openimages_stand_ins(tmp_path, 3, OIV6 / "detection_validation_input_5k.lst")
    overrides = [
        *data,
        "codec=jpeg",
        "codec.ladder=[50]",
        "task=mmdet_faster_rcnn",
        "+task.cfg_options={model.test_cfg.rcnn.score_thr:0.0}",
    ]
    summaries = evaluate(make_cfg(*overrides, config_name="eval", fast=False))
    point = summaries[0]
    assert 0 <= point["map"] <= 1 and 0 <= point["coco_map"] <= 1, point
    predictions = next(tmp_path.rglob("predictions.json"))
    written = json.loads(predictions.read_text())
    assert set(written) == set(ids) and np.array(written[ids[0]]["boxes"]).shape[1] == 4


@pytest.mark.parametrize("trainer", ["cpu", "ddp_sim"])
def test_vcm_train_icm_e2e_with_the_mmdet_task_leaves_it_unchanged(make_cfg, tmp_path, trainer):
    from vcmlab.train import train

    checks = tmp_path / "checks"
    cfg = make_cfg(
        "experiment=icm_e2e",
        "module.loss.keyframes=[]",
        "task=mmdet_faster_rcnn",
        "debug=fdr",
        "logger=none",
        f"trainer={trainer}",
        "+callbacks.frozen._target_=tests.helpers.TaskStaysFrozen",
        f"+callbacks.frozen.out_dir={checks}",
    )
    metrics = train(cfg)
    assert metrics["train/loss"] == metrics["train/loss"]
    ranks = 2 if trainer == "ddp_sim" else 1
    assert sorted(p.name for p in checks.iterdir()) == [f"rank{r}.checked" for r in range(ranks)]
    assert all(int(p.read_text()) >= 1 for p in checks.iterdir())


@pytest.mark.parametrize(
    "task", ["mmdet_faster_rcnn", "mmdet_mask_rcnn", "mmdet_faster_rcnn_x101", "mmdet_mask_rcnn_x101"]
)
def test_every_shipped_task_config_builds_and_detects(make_cfg, photo_file, task):
    from hydra.utils import instantiate

    small = "{model.test_cfg.rcnn.score_thr:0.0,test_dataloader.dataset.pipeline.1.scale:[320,256]}"
    cfg = make_cfg(f"task={task}", f"+task.cfg_options={small}", config_name="eval", fast=False)
    detector = instantiate(cfg.task)
    prediction = detector.predict(load_rgb(photo_file)[None, :, :160, :200])[0]
    assert len(prediction["boxes"]) > 0 and prediction["labels"].min() >= 1
    assert ("masks" in prediction) == task.startswith("mmdet_mask")
