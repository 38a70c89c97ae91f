"""Composing conf/ outside a Hydra app (tests, benchmarks, notebooks), as vcm-train would."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from vcmlab import CONF_DIR, PROJECT_ROOT


def compose_config(overrides: list[str], output_dir: str | Path, config_name: str = "train") -> DictConfig:
    """conf/<config_name>.yaml with the overrides, every output under output_dir, ${hydra:...} resolvable."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name=config_name, overrides=[f"paths.log_dir={output_dir}", *overrides], return_hydra_config=True
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(PROJECT_ROOT)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg
