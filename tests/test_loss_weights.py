import pytest
import torch

from lightning_modules.loss_weights import LossWeightSchedule


def test_no_keyframes_gives_base_weights_everywhere():
    s = LossWeightSchedule(rate_weight=2.0, distortion_weight=0.01, task_weight=0.5)
    for step in (0, 10, 10**6):
        w = s(step)
        assert (w.rate, w.distortion, w.task) == (2.0, 0.01, 0.5)


def test_warmup_then_linear_ramp_of_task_term():
    s = LossWeightSchedule(
        task_weight=4.0, keyframes=[{"step": 0, "task": 0}, {"step": 100, "task": 0}, {"step": 200, "task": 1}]
    )
    assert s(0).task == 0 and s(99).task == 0 and s(100).task == 0
    assert s(150).task == pytest.approx(2.0)
    assert s(200).task == pytest.approx(4.0) and s(5000).task == pytest.approx(4.0)
    assert s(150).rate == 1.0  # untouched terms keep multiplier 1
    assert s.final.task == pytest.approx(4.0)


def test_step_interpolation_holds_until_next_keyframe():
    s = LossWeightSchedule(
        rate_weight=1.0, keyframes=[{"step": 0, "rate": 0.5}, {"step": 10, "rate": 2.0}], interpolation="step"
    )
    assert s(9).rate == 0.5 and s(10).rate == 2.0


def test_missing_keys_carry_over_from_previous_keyframe():
    s = LossWeightSchedule(
        task_weight=2.0, keyframes=[{"step": 0, "rate": 0.0, "task": 0.0}, {"step": 10, "task": 1.0}]
    )
    assert s(10).rate == 0.0  # not named at step 10: stays 0
    assert s(10).task == 2.0 and s(5).task == pytest.approx(1.0)


@pytest.mark.parametrize(
    "frames, message",
    [
        ([{"step": 5, "rate": 1}, {"step": 3, "rate": 1}], "increasing"),
        ([{"rate": 1}], "needs 'step'"),
        ([{"step": 0, "lambda": 1}], "unknown"),
    ],
)
def test_bad_keyframes_are_refused(frames, message):
    with pytest.raises(ValueError, match=message):
        LossWeightSchedule(keyframes=frames)


def test_mse_255_is_on_the_8_bit_scale_overall_and_per_image():
    from vcm_metrics import mse_255

    x = torch.zeros(2, 3, 4, 4)
    x_hat = x.clone()
    x_hat[0] += 1 / 255
    x_hat[1] += 3 / 255
    assert mse_255(x_hat, x).item() == pytest.approx(5.0)  # (1 + 9) / 2
    assert mse_255(x_hat, x, start_dim=1).tolist() == pytest.approx([1.0, 9.0])
    assert mse_255(x_hat[:, None], x[:, None].expand(2, 2, 3, 4, 4), start_dim=2).shape == (2, 2)
