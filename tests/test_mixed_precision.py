"""bf16-mixed training on CPU with the manual main + aux step: entropy models stay in fp32, losses stay
finite, parameters move, and the exported model still codes and decodes exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from compressai.models import ScaleHyperprior
from pytorch_lightning import Callback

from codec_networks import LearnedCodec
from codec_networks.precision import keep_entropy_models_fp32
from tests.conftest import short_training_run
from vcmlab.checkpoints import load_codec


def test_entropy_models_run_in_fp32_under_autocast():
    torch.manual_seed(0)
    model = ScaleHyperprior(16, 24).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        z = model.h_a(model.g_a(x).abs()).bfloat16()  # what a bf16 analysis transform hands on
        exact = model.entropy_bottleneck(z.float())[1]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = model.entropy_bottleneck(z)[1]
        assert not torch.equal(plain, exact)  # CompressAI's own ops in bf16: what the hooks are for
        keep_entropy_models_fp32(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hooked = model.entropy_bottleneck(z)[1]
            out = model(x)
            assert torch.is_autocast_cpu_enabled()  # the fp32 region ends with the entropy model
        assert torch.equal(hooked, exact)
        assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out["likelihoods"].values())
        assert out["x_hat"].dtype == torch.bfloat16  # the transforms still run in bf16
        twin = copy.deepcopy(model)  # hooks survive copies
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(twin.entropy_bottleneck(z)[1], exact)
        reference = ScaleHyperprior(16, 24).eval()
        reference.load_state_dict(model.state_dict())
        a, b = model(x), reference(x)  # in fp32 the hooks change nothing
    assert torch.equal(a["x_hat"], b["x_hat"]) and torch.equal(a["likelihoods"]["y"], b["likelihoods"]["y"])


class ParameterWatch(Callback):
    """Keeps the codec's parameters at the start and every step's loss, for the test to read."""

    instances: list = []

    def __init__(self):
        ParameterWatch.instances.append(self)
        self.losses = []

    def on_train_start(self, trainer, pl_module):
        self.precision = trainer.precision
        self.start = {k: v.detach().clone() for k, v in pl_module.codec.named_parameters()}

    def on_train_batch_end(self, trainer, pl_module, outputs, *args):
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))

    def on_train_end(self, trainer, pl_module):
        self.end = {k: v.detach().clone() for k, v in pl_module.codec.named_parameters()}


def test_bf16_mixed_training_codes_real_bitstreams(tmp_path):
    ParameterWatch.instances.clear()
    run = short_training_run(
        tmp_path,
        "experiment=lic_hyperprior",
        "trainer.precision=bf16-mixed",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "trainer.log_every_n_steps=1",
        "+callbacks.watch._target_=tests.test_mixed_precision.ParameterWatch",
    )
    (watch,) = ParameterWatch.instances
    assert watch.precision == "bf16-mixed"
    assert len(watch.losses) == 4 and all(torch.isfinite(torch.tensor(watch.losses)))
    moved = [k for k in watch.start if not torch.equal(watch.start[k], watch.end[k])]
    assert any(k.startswith("g_a") for k in moved) and any(k.endswith("quantiles") for k in moved)
    assert all(v.dtype == torch.float32 for v in watch.end.values())  # mixed precision keeps fp32 weights

    ckpt = run / "checkpoints" / "last.ckpt"
    image = torch.rand(3, 64, 128)  # a multiple of the codec's 64: no padding
    data = LearnedCodec(load_codec(ckpt)).encode(image)
    receiver = load_codec(ckpt)  # built from the file alone
    decoded = LearnedCodec(receiver).decode(data)
    assert torch.equal(decoded, LearnedCodec(load_codec(ckpt)).decode(data))
    with torch.no_grad():  # the trained decoder's output on the rounded latent
        expected = receiver.eval()(image[None])["x_hat"]
    assert torch.allclose(decoded, expected.clamp(0, 1)[0], atol=1e-5)


class GradientWatch(Callback):
    """The main step's gradient norm as Lightning hands it to the module (callbacks run first: before
    the module clips) and after the step (clipped), with the GradScaler's scale."""

    instances: list = []

    def __init__(self):
        GradientWatch.instances.append(self)
        self.before_clip, self.after_clip, self.scales = [], [], []

    @staticmethod
    def norm(module) -> float:
        grads = [
            p.grad.flatten() for n, p in module.codec.named_parameters() if p.grad is not None and "quantiles" not in n
        ]
        return float(torch.cat(grads).float().norm())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.before_clip.append(self.norm(pl_module))
        self.scales.append(float(trainer.precision_plugin.scaler.get_scale()))

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.after_clip.append(self.norm(pl_module))


def test_16_mixed_clips_unscaled_gradients_with_the_manual_step(tmp_path):
    """16-mixed (GradScaler) through Lightning's precision plugin on CPU, where Trainer(precision=
    '16-mixed') is refused: the clip sees the unscaled gradients, so a clipped norm is the clip value,
    not clip / scale as when clipping follows manual_backward directly (Lightning #18089)."""
    GradientWatch.instances.clear()
    plugin = (
        "+trainer.plugins=[{_target_:pytorch_lightning.plugins.precision.MixedPrecision,precision:16-mixed,"
        "device:cpu,scaler:{_target_:torch.amp.GradScaler,device:cpu,init_scale:4}}]"
    )
    run = short_training_run(
        tmp_path,
        "experiment=lic_hyperprior",
        "~trainer.precision",
        plugin,
        "module.clip_grad_norm=0.5",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "+callbacks.grads._target_=tests.test_mixed_precision.GradientWatch",
    )
    (watch,) = GradientWatch.instances
    steps = [(b, a) for b, a, s in zip(watch.before_clip, watch.after_clip, watch.scales) if s > 1 and b < float("inf")]
    assert steps, "no finite step under a scale above 1"
    for before, after in steps:
        assert after == pytest.approx(min(before, 0.5), rel=1e-3)
    assert any(before > 0.5 for before, _ in steps)  # the clip was active
    data = LearnedCodec(load_codec(run / "checkpoints" / "last.ckpt")).encode(torch.rand(3, 64, 64))
    assert LearnedCodec(load_codec(run / "checkpoints" / "last.ckpt")).decode(data).shape == (3, 64, 64)
