"""Loading task-network weights from a local file, safely."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from vcmlab.errors import CheckpointError

log = logging.getLogger(__name__)


def load_weights(module: nn.Module, checkpoint: str | None, what: str) -> None:
    """Load a state dict (plain, or under 'state_dict'/'model') into `module`; warn loudly without one."""
    if checkpoint is None:
        message = (
            f"{what} is RANDOMLY INITIALISED: no checkpoint was given. Task losses and mAP are meaningless "
            "(fine for tests and smoke runs). Pass task.checkpoint=/path/to/weights.pth for real results."
        )
        warnings.warn(message, stacklevel=2)
        log.warning(message)
        return
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a non-tensor pickle or a corrupt file
        raise CheckpointError(f"cannot load {what} checkpoint {path} as plain tensors (weights_only=True): {err}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[:3]
        raise CheckpointError(f"checkpoint {path} does not fit {what}: {' '.join(first)}") from None
