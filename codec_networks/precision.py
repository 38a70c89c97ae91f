"""Mixed-precision training of CompressAI codecs (trainer.precision=bf16-mixed or 16-mixed): the
transforms run in half precision, but every entropy model (EntropyBottleneck, GaussianConditional)
runs in fp32 on fp32 inputs, so the likelihoods and the rate term never see half precision. In half
precision CompressAI's likelihood lower bound (1e-9) underflows to zero, and -log2 of it is infinite.

Hooks, not wrappers: a forward pre-hook casts the inputs and enters an autocast-off region, and a
forward hook (always called, errors included) leaves it. The hooks are module-level functions, so
deep copies and pickles of the model keep working; in fp32 they change nothing.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyModel

_REGIONS = "_vcm_fp32_regions"


def _to_fp32(value):
    return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def _enter_fp32(module, args, kwargs):
    device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), "cpu")
    region = torch.autocast(device, enabled=False)
    region.__enter__()
    module.__dict__.setdefault(_REGIONS, []).append(region)
    return tuple(_to_fp32(a) for a in args), {k: _to_fp32(v) for k, v in kwargs.items()}


def _leave_fp32(module, args, kwargs, output):
    module.__dict__[_REGIONS].pop().__exit__(None, None, None)
    return output


def keep_entropy_models_fp32(model: torch.nn.Module) -> torch.nn.Module:
    """Hook every entropy model of `model` to run in fp32 (once; returns `model`)."""
    for module in model.modules():
        if isinstance(module, EntropyModel) and not getattr(module, "_vcm_fp32", False):
            module.register_forward_pre_hook(_enter_fp32, with_kwargs=True)
            module.register_forward_hook(_leave_fp32, with_kwargs=True, always_call=True)
            module._vcm_fp32 = True
    return model
