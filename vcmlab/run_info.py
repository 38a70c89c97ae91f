"""What makes a run reproducible, written into its directory: resolved config, seed, git revision,
command line and the exact package list."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vcmlab import PROJECT_ROOT


def git_revision(cwd: Path = PROJECT_ROOT) -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    revision = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision or "unknown", "dirty": bool(status) if status is not None else None}


def installed_packages() -> list[str]:
    names = {(d.metadata["Name"] or "?"): d.version for d in importlib.metadata.distributions()}
    return sorted(f"{name}=={version}" for name, version in names.items())


def save_run_info(cfg: DictConfig, output_dir: str | Path, seed: int | None) -> Path:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (output_dir / "packages.txt").write_text("\n".join(installed_packages()) + "\n")
    info = {
        "seed": seed,
        "git": git_revision(),
        "command": sys.argv,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    path = output_dir / "run_info.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path
