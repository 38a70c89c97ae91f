"""Checkpoint handling shared by every module that holds a CompressAI codec (self.codec) and maybe a
frozen task network (self.task)."""
from __future__ import annotations

from typing import Any

from codec_networks.entropy_state import resize_entropy_buffers


class CodecCheckpointing:
    run_config: dict | None = None  # the resolved Hydra config, stored in every checkpoint (vcm-eval rebuilds from it)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The task network is frozen and loaded from its own file: no need to copy it into every checkpoint.
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("task.")}
        if self.run_config is not None:
            checkpoint["vcmlab_config"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.task is not None:
            checkpoint["state_dict"].update({f"task.{k}": v for k, v in self.task.state_dict().items()})

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # Resume and ddp_spawn's hand-back of rank 0's weights both land here: give the CDF buffers the
        # sizes update() gave them in the saved model first.
        resize_entropy_buffers(self.codec, state_dict, prefix="codec.")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
