"""Method 1's building blocks: the competitive assignment and the QP-conditioned post-filter."""
import pytest
import torch

from codec_networks.postfilters import QPConditionedFilter
from lightning_modules.competitive_assignment import assignment_weights, competitive_loss


def test_one_filter_equals_plain_training():
    torch.manual_seed(0)
    net = QPConditionedFilter(channels=8, blocks=1)
    torch.nn.init.normal_(net.tail.weight, std=0.01)
    decoded, original = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    per_sample = (net(decoded, 32) - original).pow(2).flatten(1).mean(1)
    loss, weights = competitive_loss(per_sample[:, None], temperature=0.5)
    plain = (net(decoded, 32) - original).pow(2).mean()
    assert torch.equal(weights, torch.ones(4, 1)) and abs(float(loss) - float(plain)) < 1e-6
    loss.backward()
    assert net.head.weight.grad is not None


def test_temperature_moves_weights_from_uniform_to_one_hot():
    d = torch.tensor([[0.010, 0.012, 0.015], [0.030, 0.020, 0.025]])
    hot = assignment_weights(d, temperature=100.0)
    assert torch.allclose(hot, torch.full_like(hot, 1 / 3), atol=1e-3)
    cold = assignment_weights(d, temperature=1e-5)
    assert torch.equal(cold, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    assert torch.equal(assignment_weights(d, 1.0, "winner_takes_all"), cold)
    assert torch.equal(assignment_weights(d, 1.0, "independent", torch.tensor([2, 0])), torch.tensor([[0, 0, 1.0], [1.0, 0, 0]]))


def test_weights_carry_no_gradient_and_bad_settings_are_refused():
    d = torch.rand(3, 2, requires_grad=True)
    loss, weights = competitive_loss(d, 0.1)
    assert not weights.requires_grad
    loss.backward()
    assert torch.allclose(d.grad, weights / 3)  # d(mean_b Σ_j a_j D_j)/dD = a / B with a detached
    with pytest.raises(ValueError, match="positive"):
        assignment_weights(d, 0.0)
    with pytest.raises(ValueError, match="fixed cluster"):
        assignment_weights(d, 1.0, "independent")


def test_untrained_filter_is_the_identity_and_depends_on_qp_once_trained():
    net = QPConditionedFilter(channels=8, blocks=2)
    x = torch.rand(2, 3, 20, 24)
    assert torch.equal(net(x, torch.tensor([22.0, 37.0])), x)
    torch.nn.init.normal_(net.tail.weight, std=0.1)
    assert not torch.allclose(net(x, 22.0), net(x, 47.0))
