"""How much a learned codec computes: kMAC per pixel of its encoder and decoder, and how many network
evaluations its decoder runs one after another.

MACs come from torch.utils.flop_counter (convolutions and matrix products; 1 MAC = 2 FLOPs), counted
on compress() and decompress() of one blank image, so they include the hyper-networks and context
models, and exclude the entropy coder itself. The sequential count is the number of outermost module
calls during decompress() (entropy models excluded): a serial context model evaluates its parameter
network once per latent position, an MSP model a fixed number of times.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from compressai.entropy_models import EntropyModel
from compressai.models import CompressionModel
from torch.utils.flop_counter import FlopCounterMode


@contextmanager
def counting_calls(model: torch.nn.Module):
    """Yields a one-element list that counts the outermost calls of the model's submodules."""
    counter, depth, handles = [0], [0], []
    inside_entropy = {id(m) for e in model.modules() if isinstance(e, EntropyModel) for m in e.modules()}

    def before(_module, _inputs):
        if depth[0] == 0:
            counter[0] += 1
        depth[0] += 1

    def after(_module, _inputs, _output):
        depth[0] -= 1

    for module in model.modules():
        if module is not model and id(module) not in inside_entropy:
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()


def measure(model: CompressionModel, height: int = 256, width: int = 256, device="cpu") -> dict:
    """Complexity of an updated model (CDF tables built) on one blank height x width image."""
    # the flop counter's module tracking needs autograd's bookkeeping: not under inference_mode (vcm-eval)
    with torch.inference_mode(False), torch.no_grad():
        x = torch.zeros(1, 3, height, width, device=device)
        with FlopCounterMode(display=False) as encoder_flops:
            out = model.compress(x)
        with FlopCounterMode(display=False) as decoder_flops, counting_calls(model) as calls:
            model.decompress(out["strings"], out["shape"])
    pixels = height * width
    return {
        "encoder_kmac_per_pixel": encoder_flops.get_total_flops() / 2 / pixels / 1e3,
        "decoder_kmac_per_pixel": decoder_flops.get_total_flops() / 2 / pixels / 1e3,
        "decoder_sequential_calls": calls[0],
        "complexity_measured_on": f"{width}x{height}",
    }
