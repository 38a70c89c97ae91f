"""Checkpoint handling shared by the modules: the run's config goes into every checkpoint (vcm-eval
rebuilds networks from it) and the frozen task network (self.task) stays out of it."""

from __future__ import annotations

from typing import Any

from compressai.models import CompressionModel

from vcmlab.checkpoints import drop_foreign_callback_paths, submodule_state


class RunConfigCheckpointing:
    run_config: dict | None = None  # the resolved Hydra config, set by vcm-train

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The task network is frozen and loaded from its own file: no need to copy it into every checkpoint.
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("task.")}
        if self.run_config is not None:
            checkpoint["vcmlab_config"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        drop_foreign_callback_paths(checkpoint)  # runs before Lightning restores the callbacks
        if self.task is not None:
            checkpoint["state_dict"].update({f"task.{k}": v for k, v in self.task.state_dict().items()})


class CodecCheckpointing(RunConfigCheckpointing):
    """For modules that hold a CompressAI codec (self.codec)."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # Resume and ddp_spawn's hand-back of rank 0's weights both land here. update() resized the CDF
        # buffers of the saved model; CompressAI's own CompressionModel.load_state_dict resizes them
        # back, but only when called on the codec itself: load the codec's part through it first.
        if isinstance(self.codec, CompressionModel):
            self.codec.load_state_dict(submodule_state(state_dict, "codec"), strict=False)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
