"""vcmlab: Hydra entry points (vcm-train, vcm-eval) and run bookkeeping."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
