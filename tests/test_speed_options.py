"""module.compile and module.channels_last change how the codec runs, not what it computes."""

from __future__ import annotations

import pytest
import torch
from compressai.models import ScaleHyperprior

from lightning_modules import CodecModule

TOLERANCE = 1e-4  # on x_hat in [0, 1] and on likelihoods: float reassociation, not a different model


def modules(**options) -> tuple[CodecModule, CodecModule]:
    torch.manual_seed(0)
    eager = CodecModule(ScaleHyperprior(16, 24), real_bitstreams=False).eval()
    other = CodecModule(ScaleHyperprior(16, 24), real_bitstreams=False, **options).eval()
    other.load_state_dict(eager.state_dict())
    other.configure_model()
    assert list(other.state_dict()) == list(eager.state_dict())  # checkpoints keep their keys
    return eager, other


def outputs(module: CodecModule, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = module.codec(x.contiguous(memory_format=torch.channels_last) if module.channels_last else x)
    return out["x_hat"], out["likelihoods"]["y"]


@pytest.mark.parametrize(
    "options", [{"channels_last": True}, pytest.param({"compile": True}, marks=pytest.mark.slow)], ids=str
)
def test_speed_options_give_the_eager_outputs(options):
    eager, other = modules(**options)
    x = torch.rand(2, 3, 64, 64)
    (a, la), (b, lb) = outputs(eager, x), outputs(other, x)
    assert torch.allclose(a, b, atol=TOLERANCE) and torch.allclose(la, lb, atol=TOLERANCE)
    if options.get("channels_last"):
        assert other.codec.g_a[0].weight.is_contiguous(memory_format=torch.channels_last)
    else:
        assert hasattr(other.codec.g_a, "_compiled_call_impl") and other.codec.g_a._compiled_call_impl is not None
