"""Method 10: the MAML inner loop is differentiable (second order) or not (first order)."""
import pytest
import torch
from hydra.utils import instantiate

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
    module.objective.objective(module.codec, x, y, 0).backward()
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
