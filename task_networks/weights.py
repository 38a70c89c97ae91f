"""Loading task-network weights from a local file, safely."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from torch import nn

from vcmlab.checkpoints import safe_load
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
    state = safe_load(path, f"{what} checkpoint")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[:3]
        raise CheckpointError(f"checkpoint {path} does not fit {what}: {' '.join(first)}") from None
