"""Per-image results of an image evaluation as files. Each (rate point, image) leaves its bitstream,
`<rate point>/bitstreams/<name>.bin`, and a record, `<rate point>/records/<name>.json`, which holds the
image's row of per_image.csv, the bitstream's size and SHA-256, the SHA-256 of the source pixels
(a rerun recodes an image whose content changed under the same name) and, with a task network, its
predictions and the reference they are scored against. Every figure an evaluation reports is computed
from records read back through the same JSON, so an uninterrupted run, a resumed run, a run with
workers and a merge of shards report the same numbers.

Files are written under a temporary name and renamed into place, so a killed run never leaves a
half-written file under a final name; a record counts as done only while its bitstream has the size
and checksum the record states.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vcmlab.errors import InputError

RECORDS = "records"
BITSTREAMS = "bitstreams"


def write_atomic(path: Path, data: bytes) -> None:
    """`data` at `path`, all or nothing: written to a temporary name, then renamed (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_sha256(item: dict) -> str:
    """SHA-256 of an item's pixels (kept in the item): a record or a cached prediction counts for the
    image only while the image is the same, not merely one of the same name."""
    if "source_sha256" not in item:
        item["source_sha256"] = pixels_sha256(item["image"])
    return item["source_sha256"]


def pixels_sha256(x) -> str:
    return sha256(x.detach().cpu().contiguous().numpy().tobytes())


def bitstream_path(point_dir: Path, name: str) -> Path:
    return point_dir / BITSTREAMS / f"{name}.bin"


def write_record(point_dir: Path, record: dict) -> None:
    write_atomic(point_dir / RECORDS / f"{record['name']}.json", json.dumps(record).encode())


def read_verified_record(point_dir: Path, name: str) -> dict | None:
    """The record of image `name`, or None when it is missing, unreadable, or its bitstream is missing
    or differs from the size and checksum the record states (the image is then coded again)."""
    try:
        record = json.loads((point_dir / RECORDS / f"{name}.json").read_text())
        data = bitstream_path(point_dir, name).read_bytes()
    except (OSError, ValueError):
        return None
    stream = record.get("bitstream", {}) if isinstance(record, dict) else {}
    if len(data) != stream.get("bytes") or sha256(data) != stream.get("sha256"):
        return None
    return record


def read_point_records(point_dir: Path) -> dict[str, dict]:
    """Every verified record of one rate point directory, by image name; a record whose bitstream
    fails verification is an error here (a merge must not score what it cannot vouch for)."""
    records = {}
    for path in sorted((point_dir / RECORDS).glob("*.json")):
        record = read_verified_record(point_dir, path.stem)
        if record is None:
            raise InputError(f"{path}: the record or its bitstream is damaged; rerun that shard to recode it")
        records[path.stem] = record
    return records
