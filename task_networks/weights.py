"""Loading task-network weights from a local file, safely."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from torch import nn

from task_networks.weight_files import WEIGHT_FILES, require
from vcmlab.checkpoints import load_into, safe_load
from vcmlab.errors import CheckpointError

log = logging.getLogger(__name__)


def load_weights(module: nn.Module, checkpoint: str | None, what: str) -> dict:
    """Load a state dict (plain, or under 'state_dict'/'model') into `module`; warn loudly without one.
    Returns what the file holds (e.g. mmdet's `meta`), {} without a checkpoint."""
    if checkpoint is None:
        message = (
            f"{what} is RANDOMLY INITIALISED: no checkpoint was given. Task losses and mAP are meaningless "
            "(fine for tests and smoke runs). Pass task.checkpoint=/path/to/weights.pth for real results."
        )
        warnings.warn(message, stacklevel=2)
        log.warning(message)
        return {}
    path = Path(checkpoint)
    if path.name in WEIGHT_FILES:  # a shipped file: present and matching its sha256, or say how to fetch it
        require(path)
    state = content = safe_load(path, f"{what} checkpoint")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds {type(state).__name__}, not a state dict of {what}")
    load_into(module, state, path, what)
    return content if isinstance(content, dict) else {}
