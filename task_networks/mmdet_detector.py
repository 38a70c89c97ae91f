"""An mmdetection detector behind the TaskNetwork interface (optional: `make install-mmdet`).

Built from mmdet's own config files (they ship inside the mmdet wheel, `mmdet/.mim/configs/`), weights
from a local mmdet checkpoint. Imported only when configured (task=mmdet_*).

- predict(): mmdet's own inference (`inference_detector`: its test pipeline, resize and rescale), on the
  image as the 8-bit BGR array mmdet's pipeline loads; boxes come back in the image's pixels and labels
  in the data set's ids (mmdet numbers its classes 0..C-1 and the data sets index the class list that
  `classes` names, "coco" = torchvision's 91-entry list, which datamodules/openimages.py uses).
- task_loss(): the detector's own losses (`model.loss`) against ground truth, or the MSE between its
  backbone+neck features on x_hat and on x ('features'); both through mmdet's data preprocessor (BGR
  order, mean/std, padding), on the images at the resolution the batch has. Gradients reach x_hat.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from datamodules.openimages import coco_category_names, normalize_label
from task_networks.base import DetectorTaskNetwork
from task_networks.weights import load_weights

INSTALL_HINT = (
    "task=mmdet_* needs mmdet 3.3 with mmcv 2.1 built with its compiled ops: run `make install-mmdet` "
    "(it builds mmcv against this venv's torch once, about 5 minutes on 2 cores; mmcv-lite is not enough). "
    "The torchvision task networks (task=faster_rcnn, task=mask_rcnn) need nothing extra."
)
LOSS_MODES = ("auto", "detector", "features")


def _import_mmdet():
    try:
        import mmcv.ops  # noqa: F401  (fails here, clearly, when mmcv lacks its compiled ops)
        from mmdet.apis import inference_detector, init_detector
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks
        from mmdet.utils import get_test_pipeline_cfg
        from mmengine.dataset import Compose
        from mmengine.structures import InstanceData
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} (import failed: {err})") from None
    return init_detector, inference_detector, get_test_pipeline_cfg, Compose, DetDataSample, InstanceData, BitmapMasks


def config_path(config: str) -> Path:
    """A config file: a path, or one relative to the configs shipped in the mmdet wheel."""
    import mmdet

    for path in (Path(config), Path(mmdet.__file__).parent / ".mim" / "configs" / config):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"mmdet config {config!r} not found, neither as a path nor under mmdet's own configs "
        f"({Path(mmdet.__file__).parent / '.mim' / 'configs'}), e.g. faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"
    )


def plain_options(options) -> dict | None:
    """Hydra's cfg_options as mmengine takes them: plain containers, and lists of numbers as tuples
    (mmdet's configs write sizes such as Resize's scale as tuples, and mmcv refuses lists)."""
    if options is None:
        return None

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            items = [plain(v) for v in value]
            return tuple(items) if all(isinstance(v, (int, float)) for v in items) else items
        return value

    return plain(OmegaConf.to_container(options) if isinstance(options, DictConfig) else dict(options))


def dataset_class_names(classes: str | list[str]) -> list[str]:
    """The class list the data set's label ids index (0 = background), as datamodules/openimages.py."""
    if classes == "coco":
        return coco_category_names()
    return ["__background__", *classes]


class MMDetDetector(DetectorTaskNetwork):
    def __init__(
        self,
        config: str,
        checkpoint: str | None = None,
        loss: str = "auto",
        classes: str | list[str] = "coco",
        cfg_options: dict | None = None,
    ):
        super().__init__()
        if loss not in LOSS_MODES:
            raise ValueError(f"task loss must be one of {LOSS_MODES}, got {loss!r}")
        init_detector, self._inference, test_pipeline, compose, *structures = _import_mmdet()
        self._DetDataSample, self._InstanceData, self._BitmapMasks = structures
        # init_detector drops the backbone's init_cfg (no ImageNet download) and keeps the config for
        # inference_detector's test pipeline; the weights come through the project's safe loader
        self.model = init_detector(
            str(config_path(config)), checkpoint=None, device="cpu", cfg_options=plain_options(cfg_options)
        )
        stored = load_weights(self.model, checkpoint, f"mmdet model {config}")
        meta = stored.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("dataset_meta"), dict) and "classes" in meta["dataset_meta"]:
            self.model.dataset_meta = {"classes": tuple(meta["dataset_meta"]["classes"])}  # what it was trained on
        # the config's test pipeline, loading arrays; built here because inference_detector, left to build
        # it, writes the array loader into the model's own (shallow-copied) config
        pipeline = copy.deepcopy(test_pipeline(self.model.cfg))
        pipeline[0].type = "mmdet.LoadImageFromNDArray"
        self._pipeline = compose(pipeline)
        self.loss_mode = loss
        self.with_masks = bool(getattr(self.model, "with_mask", False))
        self._build_label_map(self.model.dataset_meta["classes"], dataset_class_names(classes))
        self.freeze()

    def _build_label_map(self, detector_names, dataset_names) -> None:
        ids = {normalize_label(n): i for i, n in enumerate(dataset_names) if n not in ("__background__", "N/A")}
        missing = [n for n in detector_names if normalize_label(n) not in ids]
        if missing:
            raise ValueError(
                f"the detector's classes {missing[:5]} ({len(missing)} in all) are not in the data set's class "
                "list; set task.classes to the list the data set uses"
            )
        self.detector_classes = list(detector_names)
        self.to_dataset = torch.tensor([ids[normalize_label(n)] for n in detector_names])  # mmdet index -> data set id
        self.to_detector = {int(d): i for i, d in enumerate(self.to_dataset)}

    def _preprocess(self, images: torch.Tensor, samples: list | None = None) -> dict:
        """mmdet's own data preprocessor on [0,1] RGB images: 0..255, BGR if the model wants it, mean/std,
        padding to its size divisor; differentiable."""
        if samples is None:
            samples = [self._DetDataSample(metainfo={"img_shape": tuple(i.shape[-2:])}) for i in images]
        for image, sample in zip(images, samples):
            shape = tuple(image.shape[-2:])
            sample.set_metainfo({"img_shape": shape, "ori_shape": shape, "scale_factor": (1.0, 1.0)})
        # the preprocessor reads the colour order as loaded by mmcv (BGR) and flips it when bgr_to_rgb
        inputs = [image.flip(0) * 255.0 for image in images]
        return self.model.data_preprocessor({"inputs": inputs, "data_samples": samples}, False)

    def feature_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            reference = self.model.extract_feat(self._preprocess(x)["inputs"])
        decoded = self.model.extract_feat(self._preprocess(x_hat)["inputs"])
        return torch.stack([F.mse_loss(a, b) for a, b in zip(decoded, reference)]).mean()

    def _samples(self, targets: list[dict], device: torch.device) -> list:
        samples = []
        for t in targets:
            labels = t["labels"].tolist()
            unknown = sorted({int(label) for label in labels} - set(self.to_detector))
            if unknown:
                raise ValueError(f"ground-truth labels {unknown} are not among the detector's classes")
            instances = self._InstanceData(
                bboxes=t["boxes"].float().to(device),
                labels=torch.tensor(
                    [self.to_detector[int(label)] for label in labels], dtype=torch.long, device=device
                ),
            )
            if self.with_masks:
                if "masks" not in t:
                    raise ValueError(
                        "Mask R-CNN's own loss needs instance masks in the targets; use task.loss=features"
                    )
                masks = t["masks"].cpu().numpy().astype(np.uint8)
                instances.masks = self._BitmapMasks(masks, *masks.shape[-2:])
            sample = self._DetDataSample()
            sample.gt_instances = instances
            samples.append(sample)
        return samples

    def detector_loss(self, x_hat: torch.Tensor, targets: list[dict]) -> torch.Tensor:
        data = self._preprocess(x_hat, self._samples(targets, x_hat.device))
        losses = self.model.loss(data["inputs"], data["data_samples"])
        return sum(v.sum() if torch.is_tensor(v) else sum(v) for k, v in losses.items() if "loss" in k)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict]:
        arrays = [
            np.ascontiguousarray((i.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).flip(-1).cpu().numpy())
            for i in images
        ]
        out = []
        for result in self._inference(self.model, arrays, test_pipeline=self._pipeline):
            pred = result.pred_instances
            detection = {
                "boxes": pred.bboxes,
                "labels": self.to_dataset.to(pred.labels.device)[pred.labels],
                "scores": pred.scores,
            }
            if "masks" in pred:
                detection["masks"] = pred.masks
            out.append(detection)
        return out
