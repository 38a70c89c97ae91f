"""Method 1: the competitive assignment, the post-filters, the LightningModule, temperature annealing and
real training runs."""

import pytest
import torch

from codec_networks.postfilters import FilterBank, QPConditionedFilter
from lightning_modules import CompetitiveFiltersModule
from lightning_modules.competitive_assignment import assignment_weights, competitive_loss
from tests.conftest import FILTERS_FAST
from tests.helpers import FeatureTask, wandb_offline_record
from vcmlab.callbacks import TemperatureAnnealing
from vcmlab.checkpoints import load_filter_bank, read_checkpoint


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
    assert torch.equal(
        assignment_weights(d, 1.0, "independent", torch.tensor([2, 0])), torch.tensor([[0, 0, 1.0], [1.0, 0, 0]])
    )


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


# -- the LightningModule, the annealing callback and a real training run -------------------------


def _batch(n=4, size=16):
    original = torch.rand(n, 3, size, size)
    return {
        "original": original,
        "decoded": (original + 0.05 * torch.randn_like(original)).clamp(0, 1),
        "qp": torch.full((n,), 37.0),
    }


def test_module_with_one_filter_has_the_plain_training_loss():
    torch.manual_seed(0)
    bank = FilterBank(filters=1, channels=8, blocks=1)
    torch.nn.init.normal_(bank.filters[0].tail.weight, std=0.01)
    batch = _batch()
    plain = (bank.filters[0](batch["decoded"], batch["qp"]) - batch["original"]).pow(2).mean() * 255**2
    for strategy in ("competitive", "winner_takes_all"):
        module = CompetitiveFiltersModule(bank, strategy=strategy, temperature=0.3)
        module.log = lambda *a, **k: None
        assert abs(float(module.training_step(batch, 0)) - float(plain)) < 1e-6 * float(plain)


def test_independent_baseline_trains_each_block_on_its_fixed_texture_class():
    torch.manual_seed(0)
    module = CompetitiveFiltersModule(FilterBank(filters=3, channels=8, blocks=1), strategy="independent")
    smooth, busy = torch.full((2, 3, 16, 16), 0.5), torch.rand(2, 3, 16, 16)
    module.cluster_edges.copy_(torch.tensor([0.01, 0.2]))
    assert module.clusters(torch.cat([smooth, busy])).tolist() == [0, 0, 2, 2]


def test_bad_module_settings_are_refused():
    bank = FilterBank(filters=2, channels=8, blocks=1)
    with pytest.raises(ValueError, match="strategy"):
        CompetitiveFiltersModule(bank, strategy="kmeans")
    with pytest.raises(ValueError, match="task network"):
        CompetitiveFiltersModule(bank, distortion="mix")
    with pytest.raises(ValueError, match="at least one"):
        FilterBank(filters=0)


@pytest.mark.parametrize("schedule,middle", [("exponential", 1.0), ("linear", 5.05), ("step", 2.5)])
def test_temperature_schedules_run_from_start_to_end(schedule, middle):
    annealing = TemperatureAnnealing(start=10.0, end=0.1, schedule=schedule, every=25, factor=0.5)
    assert annealing.temperature(0, 100) == 10.0
    assert annealing.temperature(50, 100) == pytest.approx(middle)
    assert annealing.temperature(100, 100) == pytest.approx(0.1 if schedule != "step" else 0.625)
    assert annealing.temperature(10_000, 100) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="start >= end"):
        TemperatureAnnealing(start=0.1, end=1.0)


def test_short_training_lowers_the_mse_of_held_out_hevc_blocks(filters_run, make_cfg):
    from hydra.utils import instantiate

    metrics = (filters_run / "metrics_table.csv").read_text().splitlines()
    assert len(metrics) == 3  # header + two validations
    ckpt = filters_run / "checkpoints" / "last.ckpt"
    assert read_checkpoint(ckpt)["global_step"] == 200  # the final state even when the best was at step 100
    bank = load_filter_bank(ckpt).eval()
    assert bank.usage.sum() > len(bank) + 1  # validation wrote the usage prior

    # measured here, on the held-out photos' blocks, not read from the logs
    cfg = make_cfg(*FILTERS_FAST, f"data.cache_dir={filters_run / 'cache'}", fast=False)
    dm = instantiate(cfg.data)
    dm.setup("validate")
    batch = next(iter(torch.utils.data.DataLoader(dm.datasets["val"], batch_size=len(dm.datasets["val"]))))
    with torch.no_grad():
        outputs = bank(batch["decoded"], batch["qp"]).clamp(0, 1)
    none = (batch["decoded"] - batch["original"]).pow(2).mean()
    per_filter = (outputs - batch["original"][:, None]).pow(2).mean((0, 2, 3, 4))
    assert per_filter.min() < none


def test_ddp_sim_keeps_filters_usage_prior_and_texture_split_in_sync(make_cfg, tmp_path):
    from vcmlab.train import train

    cfg = make_cfg(
        *FILTERS_FAST,
        "module.strategy=independent",
        "module.cluster_batches=2",
        "trainer=ddp_sim",
        "logger=csv",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        f"data.cache_dir={tmp_path / 'cache'}",
        "+callbacks.replica_check._target_=tests.replica_check.ReplicaCheck",
        fast=False,
    )
    metrics = train(cfg)
    assert metrics["val/mse_none"] > 0
    lines = sorted((tmp_path / "replica_check").read_text().splitlines())
    assert len(lines) == 2 and lines[0].split()[1] == lines[1].split()[1]
    edges = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]["cluster_edges"]
    assert edges.shape == (1,) and torch.isfinite(edges).all()


def test_task_and_mixed_distortions_weight_filters_by_task_features():
    from lightning_modules.competitive_filters import feature_distortion

    torch.manual_seed(0)
    bank = FilterBank(filters=2, channels=8, blocks=1)
    for f in bank.filters:
        torch.nn.init.normal_(f.tail.weight, std=0.02)
    batch, task = _batch(), FeatureTask()
    outputs = bank(batch["decoded"], batch["qp"])
    features = feature_distortion(task, outputs, batch["original"])
    assert features.shape == (4, 2) and (features > 0).all()
    mse = CompetitiveFiltersModule(bank).distortions(outputs, batch["original"])
    mixed = CompetitiveFiltersModule(bank, task, distortion="mix", task_scale=10.0).distortions(
        outputs, batch["original"]
    )
    assert torch.allclose(mixed, mse + 10.0 * features)
    module = CompetitiveFiltersModule(bank, task, distortion="task", temperature=1.0)
    module.log = lambda *a, **k: None
    module.training_step(batch, 0).backward()
    assert all(f.tail.weight.grad.abs().sum() > 0 for f in bank.filters)


def test_filter_usage_per_qp_goes_to_wandb_as_histograms(make_cfg, tmp_path):
    from vcmlab.train import train

    cfg = make_cfg(
        *FILTERS_FAST,
        "logger=wandb",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        f"data.cache_dir={tmp_path / 'cache'}",
        fast=False,
    )
    metrics = train(cfg)
    shares = [metrics[f"val/usage/{k}"] for k in ("no_filter", "filter_0", "filter_1")]
    assert sum(shares) == pytest.approx(1)
    needles = (b"val/filter_usage/qp37", b"val/filter_usage/qp42", b"train/temperature")
    record = wandb_offline_record(tmp_path, *needles)
    assert b"val/filter_usage/qp37" in record and b"val/filter_usage/qp42" in record and b"train/temperature" in record
