"""What ties the directories of one image evaluation together: a fingerprint of everything that decides
its results, and the manifest (`eval_manifest.json`) each run directory keeps.

The fingerprint hashes the resolved config without the keys that only say where and how fast a run
goes (paths, logger, workers, shard, ...), plus the content of every file the config names (checkpoints,
bias sets, annotation files), so a checkpoint replaced under the same name is a different evaluation,
and vcmlab's own source: records coded by other code (another bitstream format, a fixed metric) are
never mixed with new ones.
A rerun into a directory whose manifest has another fingerprint, and a merge of shards with differing
fingerprints, are refused with the keys that differ.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vcmlab import PROJECT_ROOT
from vcmlab.errors import ConfigError, InputError
from vcmlab.evaluation.records import write_atomic

MANIFEST = "eval_manifest.json"
LARGE_FILE = 256 << 20
# keys that do not change a single figure of the results
NOT_FINGERPRINTED = (
    "paths",
    "hydra",
    "logger",
    "workers",
    "shard",
    "num_shards",
    "merge",
    "run_name",
    "label",
    "anchors",
    "tags",
    "task_name",
)


def results_config(cfg: DictConfig) -> dict:
    """The resolved config less NOT_FINGERPRINTED: what decides the results."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in resolved.items() if k not in NOT_FINGERPRINTED}


def _named_files(value) -> list[Path]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in _named_files(v)]
    if isinstance(value, list):
        return [p for v in value for p in _named_files(v)]
    if isinstance(value, str) and len(value) < 4096:
        try:
            path = Path(value)
            return [path] if path.is_file() else []
        except OSError:
            return []
    return []


def _file_digest(path: Path) -> str:
    """SHA-256 of the file; of its size, first and last 64 MiB when it is larger than 256 MiB (a
    training-set annotation CSV of gigabytes named beside the evaluation's own files)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size > LARGE_FILE:
            digest.update(str(size).encode() + f.read(LARGE_FILE // 4))
            f.seek(size - LARGE_FILE // 4)
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


# the packages whose code decides results (callbacks/ is installed inside vcmlab/)
CODE_PACKAGES = (
    "vcmlab",
    "callbacks",
    "codec_networks",
    "conventional_codecs",
    "datamodules",
    "task_networks",
    "vcm_metrics",
    "lightning_modules",
)


def code_digest(root: Path = PROJECT_ROOT) -> str:
    """SHA-256 of every Python file of CODE_PACKAGES: committed or not, installed or checked out."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(config: dict, code: str) -> str:
    """SHA-256 of `config` (results_config), of the content of every file it names and of `code`."""
    files = {str(p): _file_digest(p) for p in sorted(set(_named_files(config)))}
    return hashlib.sha256(json.dumps([config, files, code], sort_keys=True, default=str).encode()).hexdigest()


def differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    keys = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += differing_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


def _difference(a: dict, b: dict) -> str:
    """What separates two manifests' evaluations, for an error message."""
    keys = differing_keys(a.get("config", {}), b.get("config", {}))
    if a.get("code") != b.get("code"):
        keys.append("vcmlab's code")
    return ", ".join(keys) or "the content of a file it names"


def shard_indices(size: int, shard: int, num_shards: int) -> list[int]:
    """Data set indices of shard `shard` of `num_shards`: every num_shards-th image, so shards differ by
    at most one image and neighbouring (often similar) images spread over all shards."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(
            f"shard must lie in [0, num_shards), num_shards >= 1; got shard={shard}, num_shards={num_shards}"
        )
    return list(range(shard, size, num_shards))


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise InputError(f"{run_dir}: not a vcm-eval image run directory (no {MANIFEST})")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"{path}: unreadable manifest ({err})") from None


def write_manifest(run_dir: Path, manifest: dict) -> None:
    write_atomic(Path(run_dir) / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def check_resumable(run_dir: Path, manifest: dict) -> bool:
    """True when `run_dir` holds an earlier run of the same evaluation and shard (it is resumed); False
    when it holds none; an error when it holds another evaluation."""
    if not (Path(run_dir) / MANIFEST).is_file():
        return False
    earlier = read_manifest(run_dir)
    if earlier.get("fingerprint") != manifest["fingerprint"]:
        raise ConfigError(
            f"{run_dir} holds another evaluation (differs in {_difference(earlier, manifest)}): give another run_name "
            "or the same settings to resume it"
        )
    for key in ("shard", "num_shards"):
        if earlier.get(key) != manifest[key]:
            raise ConfigError(f"{run_dir} holds {key}={earlier.get(key)}, not {manifest[key]}: give another run_name")
    return True


def check_shards(manifests: dict[Path, dict]) -> int:
    """Shards that make one whole evaluation: the same fingerprint and number of shards, each shard
    once and finished; returns the number of shards, or raises naming the offending directory."""
    (first_dir, first), *rest = manifests.items()
    for run_dir, m in rest:
        if m.get("fingerprint") != first.get("fingerprint"):
            raise InputError(
                f"{run_dir} is a shard of another evaluation than {first_dir} (differs in {_difference(first, m)})"
            )
        if m.get("num_shards") != first.get("num_shards"):
            raise InputError(f"{run_dir} has num_shards={m.get('num_shards')}, {first_dir} {first.get('num_shards')}")
    num_shards = first["num_shards"]
    seen: dict[int, Path] = {}
    for run_dir, m in manifests.items():
        if m["shard"] in seen:
            raise InputError(f"shard {m['shard']} given twice (overlapping shards): {seen[m['shard']]} and {run_dir}")
        seen[m["shard"]] = run_dir
        if not m.get("complete"):
            raise InputError(f"{run_dir}: shard {m['shard']} did not finish; rerun its command to resume it")
    missing = sorted(set(range(num_shards)) - set(seen))
    if missing:
        raise InputError(f"shard(s) {missing} of {num_shards} missing: give every shard's run directory")
    return num_shards
