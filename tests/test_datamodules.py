import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import ImageFolderDataModule, ImageReadError, OpenImagesDataModule, SampleDataModule, load_rgb
from datamodules.image_datasets import ImageFileDataset, ImageTooSmallError
from datamodules.openimages import OpenImagesDataset, normalize_label, read_annotations, read_subset_list
from tests.conftest import SHARED_DATA
from tests.helpers import write_image
from vcmlab.errors import InputError

OIV6 = SHARED_DATA / "oiv6-mpeg-vcm"


# ----------------------------------------------------------------------------- image reading
def test_modes_are_converted_to_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100).save(tmp_path / "deep.png")

    x = load_rgb(tmp_path / "rgb.png")
    assert x.shape == (3, 20, 30) and x.dtype == torch.float32
    assert torch.allclose(x, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    gray = load_rgb(tmp_path / "gray.png")
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert torch.allclose(load_rgb(tmp_path / "alpha.png"), x)  # alpha dropped, colour kept
    assert load_rgb(tmp_path / "cmyk.jpg").shape == (3, 20, 30)
    deep = load_rgb(tmp_path / "deep.png")
    assert deep.max() > 0.85 and deep.max() <= 1.0  # 59900/65535, not clipped at 255
    assert deep[0, 0, 1] == pytest.approx(100 / 65535, rel=1e-4)


def test_corrupt_and_truncated_files_give_a_clear_error(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image at all" * 10)
    write_image(tmp_path / "full.jpg", size=(256, 256))
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for name in ("junk.png", "cut.jpg"):
        with pytest.raises(ImageReadError, match=name):
            load_rgb(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_rgb(tmp_path / "nothere.png")


# ----------------------------------------------------------------------------- datasets
def test_image_smaller_than_crop_is_an_error_or_a_warned_skip(tmp_path):
    paths = [write_image(tmp_path / "small.png", size=(40, 40)), write_image(tmp_path / "big.png", size=(80, 80))]
    with pytest.raises(ImageTooSmallError, match="40x40.*smaller than the crop 64x64"):
        ImageFileDataset(paths, 64, train=False)[0]
    dataset = ImageFileDataset(paths, 64, train=False, on_bad_image="skip")
    with pytest.warns(UserWarning, match="small.png"):
        item = dataset[0]
    assert item["name"] == "big" and item["image"].shape == (3, 64, 64)
    assert [i["name"] for i in dataset] == ["big", "big"]  # iteration ends; the bad file is replaced


def test_all_images_unusable_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    dataset = ImageFileDataset([tmp_path / "a.png"], 32, train=True, on_bad_image="skip")
    with pytest.warns(UserWarning), pytest.raises(InputError, match="every image"):
        dataset[0]


def test_sample_datamodule_gives_real_photo_crops():
    dm = SampleDataModule(crop_size=64, val_crop_size=128, train_repeats=2, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)
    assert batch["image"].min() >= 0 and batch["image"].max() <= 1 and batch["image"].std() > 0.05
    val = list(dm.val_dataloader())
    assert [b["name"][0] for b in val] == ["chelsea", "rocket"]  # fixed split
    assert val[0]["image"].shape == (1, 3, 128, 128)


def test_sample_datamodule_trains_on_other_bundled_images_but_never_the_validation_photos():
    from vcmlab.errors import ConfigError

    dm = SampleDataModule(crop_size=32, train_repeats=1, batch_size=2, train_images=["color.png", "text.png"])
    dm.setup("fit")
    assert [p.name for p in dm.datasets["train"].paths] == ["color.png", "text.png"]
    assert next(iter(dm.train_dataloader()))["image"].shape == (2, 3, 32, 32)  # grayscale text as RGB
    with pytest.raises(ConfigError, match="without the validation photos"):
        SampleDataModule(train_images=["astronaut.png", "chelsea.png"])
    with pytest.raises(FileNotFoundError, match="no_such.png"):
        SampleDataModule(train_images=["no_such.png"]).setup("fit")


def test_image_folder_split_is_deterministic_and_disjoint(tmp_path):
    for i in range(30):
        write_image(tmp_path / f"img{i:02d}.png", size=(70, 70), seed=i)
    dm = ImageFolderDataModule(train_dir=str(tmp_path), val_fraction=0.2, crop_size=64, batch_size=2)
    dm.setup("fit")
    train, val = dm.datasets["train"].paths, dm.datasets["val"].paths
    assert len(train) + len(val) == 30 and not set(train) & set(val) and val
    dm2 = ImageFolderDataModule(train_dir=str(tmp_path), val_fraction=0.2, crop_size=64)
    dm2.setup("fit")
    assert dm2.datasets["val"].paths == val
    assert next(iter(dm.train_dataloader()))["image"].shape == (2, 3, 64, 64)


def test_missing_or_empty_image_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolderDataModule(train_dir=str(tmp_path / "missing")).setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataModule(train_dir=str(tmp_path / "empty")).setup("fit")


# ----------------------------------------------------------------------------- OpenImages
needs_oiv6 = pytest.mark.skipif(not OIV6.is_dir(), reason="../shared/data/oiv6-mpeg-vcm not present")


@pytest.fixture
def oiv6_standins(tmp_path):
    """Stand-in JPEGs (real pixels are not available) for the first 12 ids of the real 5k list."""
    ids = read_subset_list(OIV6 / "detection_validation_input_5k.lst")[:12]
    folder = tmp_path / "validation"
    folder.mkdir()
    for i, image_id in enumerate(ids):
        write_image(folder / f"{image_id}.jpg", size=(160 + 8 * i, 120 + 4 * i), seed=i)
    subset = tmp_path / "subset.lst"
    subset.write_text("".join(f"{i}.jpg\n" for i in ids))
    return folder, subset, ids


@needs_oiv6
def test_openimages_annotations_in_pixel_coordinates(oiv6_standins):
    folder, subset, ids = oiv6_standins
    dataset = OpenImagesDataset(
        str(folder),
        str(OIV6 / "detection_validation_5k_bbox.csv"),
        str(OIV6 / "detection_validation_labels_5k.csv"),
        str(subset),
    )
    annotations = read_annotations(
        OIV6 / "detection_validation_5k_bbox.csv", OIV6 / "detection_validation_labels_5k.csv"
    )
    assert len(dataset) == 12
    for index, image_id in enumerate(ids):
        item = dataset[index]
        ann = annotations[image_id]
        h, w = item["image"].shape[-2:]
        t = item["targets"]
        assert item["name"] == image_id and t["boxes"].shape == (len(ann.boxes), 4)
        expected = torch.tensor(ann.boxes) * torch.tensor([w, h, w, h])
        assert torch.allclose(t["boxes"], expected, atol=1e-3)
        names = [normalize_label(dataset.class_names[i]) for i in t["labels"]]
        assert names == ann.labels  # COCO names map to torchvision's COCO ids and back
        assert t["is_group_of"].tolist() == ann.group_of
        verified = {normalize_label(dataset.class_names[i]) for i in t["image_labels"]}
        assert verified == ann.positive_labels | ann.negative_labels and verified


@needs_oiv6
def test_openimages_real_csv_statistics():
    annotations = read_annotations(
        OIV6 / "detection_validation_5k_bbox.csv", OIV6 / "detection_validation_labels_5k.csv"
    )
    assert sum(len(a.boxes) for a in annotations.values()) == 12641
    assert sum(sum(a.group_of) for a in annotations.values()) == 1118
    assert (
        len({label for a in annotations.values() for label in a.labels}) == 47
    )  # distinct LabelName values in the CSV
    assert len(read_subset_list(OIV6 / "detection_validation_input_5k.lst")) == 5000


@needs_oiv6
def test_openimages_training_crops_keep_boxes_inside(oiv6_standins):
    folder, subset, _ = oiv6_standins
    dm = OpenImagesDataModule(
        train={
            "image_dir": str(folder),
            "bbox_csv": str(OIV6 / "detection_validation_5k_bbox.csv"),
            "subset_list": str(subset),
        },
        crop_size=96,
        batch_size=3,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 96, 96)
    for t in batch["targets"]:
        assert (t["boxes"] >= 0).all() and (t["boxes"] <= 96).all()
        assert len(t["boxes"]) == len(t["labels"]) == len(t["is_group_of"])


@needs_oiv6
def test_openimages_missing_images_and_unknown_labels(oiv6_standins, tmp_path):
    folder, subset, ids = oiv6_standins
    (folder / f"{ids[0]}.jpg").unlink()
    bbox = str(OIV6 / "detection_validation_5k_bbox.csv")
    with pytest.raises(FileNotFoundError, match=ids[0]):
        OpenImagesDataset(str(folder), bbox, subset_list=str(subset))[0]
    with pytest.raises(ValueError, match="not among the configured classes"):
        OpenImagesDataset(str(folder), bbox, subset_list=str(subset), classes=["person"])
    dropped = OpenImagesDataset(str(folder), bbox, subset_list=str(subset), classes=["person"], unknown_labels="drop")
    assert all(set(dropped[i]["targets"]["labels"].tolist()) <= {1} for i in range(1, 4))
    with pytest.raises(FileNotFoundError, match="image folder"):
        OpenImagesDataset(str(tmp_path / "nope"), bbox)


def test_openimages_instance_masks_are_resized_and_cropped(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    write_image(images / "a1.jpg", size=(200, 100))
    mask = np.zeros((50, 100), dtype=np.uint8)  # half resolution, as OpenImages ships some masks
    mask[10:30, 20:60] = 255
    Image.fromarray(mask).save(masks / "a1_m1.png")
    Image.fromarray(255 - mask).save(masks / "a1_m2.png")
    csv_path = tmp_path / "seg.csv"
    csv_path.write_text(
        "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks\n"
        "a1_m1.png,a1,person,b1,0.2,0.6,0.2,0.6,0.9,\n"
        "a1_m2.png,a1,dog,b2,0.0,1.0,0.0,1.0,0.9,\n"
    )
    dataset = OpenImagesDataset(str(images), segmentation_csv=str(csv_path), mask_dir=str(masks))
    t = dataset[0]["targets"]
    assert t["masks"].shape == (2, 100, 200) and t["masks"].dtype == torch.uint8
    assert t["masks"][0].sum() == 40 * 80 and t["masks"][0, 20:60, 40:120].all()
    assert (t["masks"][0] + t["masks"][1] == 1).all()
    assert torch.allclose(t["boxes"][0], torch.tensor([40.0, 20.0, 120.0, 60.0]))
    assert not t["is_group_of"].any()

    cropped = OpenImagesDataset(str(images), segmentation_csv=str(csv_path), mask_dir=str(masks), crop_size=64)[0][
        "targets"
    ]
    assert cropped["masks"].shape[1:] == (64, 64) and len(cropped["masks"]) == len(cropped["boxes"])

    with pytest.raises(FileNotFoundError, match="mask_dir"):
        OpenImagesDataset(str(images), segmentation_csv=str(csv_path))
    with pytest.raises(ValueError, match="not both"):
        OpenImagesDataset(str(images), bbox_csv=str(csv_path), segmentation_csv=str(csv_path), mask_dir=str(masks))
    (masks / "a1_m2.png").write_bytes(b"broken")
    with pytest.raises(ImageReadError, match="a1_m2.png"):
        dataset[0]


def test_a_training_set_smaller_than_one_batch_is_refused_not_silently_skipped():
    from datamodules import SampleDataModule
    from vcmlab.errors import ConfigError

    datamodule = SampleDataModule(train_repeats=1, batch_size=8)  # 7 photos
    datamodule.setup("fit")
    with pytest.raises(ConfigError, match="training set has 7 items, fewer than batch_size=8"):
        datamodule.train_dataloader()
    datamodule = SampleDataModule(train_repeats=2, batch_size=8)
    datamodule.setup("fit")
    assert len(datamodule.train_dataloader()) == 1  # 14 items: one full batch
