"""Method 10: the MAML inner loop is differentiable (second order) or not (first order)."""

import pytest
import torch
from hydra.utils import instantiate

from codec_networks.latent_overfitting import LatentOverfitter
from codec_networks.padding import pad_to_multiple
from vcmlab.train import train


@pytest.fixture
def module_and_batch(make_cfg):
    def make(second_order: bool):
        cfg = make_cfg("experiment=maml_l2c", f"module.second_order={second_order}", "module.inner_steps=2")
        module = instantiate(cfg.module, codec=instantiate(cfg.model), task=None)
        torch.manual_seed(0)
        return module, pad_to_multiple(torch.rand(2, 3, 64, 64))

    return make


def outer_gradients(module, x):
    y, grads = module.adapt(x, module.codec.g_a(x))
    module.inner_loop.objective(module.codec, x, y, 0).backward()
    return grads


def test_second_order_inner_loop_reaches_encoder_and_decoder(module_and_batch):
    module, x = module_and_batch(True)
    grads = outer_gradients(module, x)
    assert all(g.requires_grad and g.grad_fn is not None for g in grads)  # inner gradients are in the graph
    for part in ("g_a", "g_s", "h_a", "h_s"):
        params = list(getattr(module.codec, part).parameters())
        assert all(p.grad is not None for p in params) and sum(p.grad.abs().sum() for p in params) > 0


def test_first_order_builds_no_second_order_graph(module_and_batch):
    module, x = module_and_batch(False)
    grads = outer_gradients(module, x)
    assert not any(g.requires_grad for g in grads)
    assert all(p.grad is not None for p in module.codec.g_a.parameters())  # through y0 = g_a(x)


def test_second_order_gradient_differs_from_first_order(module_and_batch):
    so, x = module_and_batch(True)
    fo, _ = module_and_batch(False)
    fo.codec.load_state_dict(so.codec.state_dict())
    torch.manual_seed(1)
    outer_gradients(so, x)
    torch.manual_seed(1)
    outer_gradients(fo, x)
    w_so = so.codec.g_a[0].weight.grad
    w_fo = fo.codec.g_a[0].weight.grad
    assert not torch.allclose(w_so, w_fo)


def test_inner_loop_lowers_the_loss_and_training_runs(make_cfg):
    metrics = train(make_cfg("experiment=maml_l2c", "debug=fdr", "logger=none"))
    assert metrics["train/loss"] < metrics["train/loss_before_adaptation"]
    assert metrics["val/bpp"] > 0


def test_normalized_inner_step_moves_each_latent_by_about_lr():
    y = torch.zeros(2, 4, 3, 3)
    grad = torch.randn(2, 4, 3, 3)
    grad[1] *= 1e4  # one image with huge gradients, as on a trained codec
    step = y - LatentOverfitter.normalized_step(y, grad, 0.03)
    rms = step.pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert torch.allclose(rms, torch.full((2,), 0.03), rtol=1e-4)


def test_phase_two_from_a_checkpoint_stays_finite(trained_run, make_cfg):
    cfg = make_cfg(
        "experiment=maml_l2c",
        f"module.codec_checkpoint={trained_run / 'checkpoints' / 'last.ckpt'}",
        "logger=none",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "module.optimizer.lr=1e-3",
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor([metrics["train/loss"], metrics["val/bpp"], metrics["val/psnr"]])).all()
