"""vcmlab: Hydra entry points (vcm-train, vcm-eval) and run bookkeeping."""

import os
from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
# Where `make weights` / vcm-weights put the shipped task-network weights: the checkout's weights/,
# whatever directory a run starts in (VCM_WEIGHTS overrides it).
WEIGHTS_DIR = Path(os.environ.get("VCM_WEIGHTS", PROJECT_ROOT / "weights"))

OmegaConf.register_new_resolver("vcm.weights_dir", lambda: str(WEIGHTS_DIR), replace=True)
