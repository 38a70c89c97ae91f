import json
import math

import numpy as np
import pytest

from tests.conftest import run_cli
from vcm_metrics.bd_rate import BDRateError, bd_quality, bd_rate

RATES = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
PSNR = np.array([28.0, 31.0, 34.0, 37.0, 40.0])


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_identical_curves_give_zero(method):
    assert bd_rate(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0.0, abs=1e-9)
    assert bd_quality(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_rates_scaled_by_0_9_give_minus_10_percent(method):
    assert bd_rate(RATES, PSNR, 0.9 * RATES, PSNR, method) == pytest.approx(-10.0, abs=0.1)
    assert bd_rate(RATES, PSNR, 1.25 * RATES, PSNR, method) == pytest.approx(25.0, abs=0.1)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_quality_shift_gives_bd_quality(method):
    assert bd_quality(RATES, PSNR, RATES, PSNR + 0.5, method) == pytest.approx(0.5, abs=1e-9)


def test_hand_checked_cubic_case():
    # anchor: log10 R = q/10; test: log10 R = q/10 + 0.001 (q - 35)^2, both exactly cubic in q.
    # Mean of 0.001 (q - 35)^2 over [30, 40] is 0.001 * 25/3, so BD-rate = 10^(0.025/3) - 1.
    q = np.array([30.0, 32.0, 34.0, 36.0, 38.0, 40.0])
    anchor = 10 ** (q / 10)
    test = 10 ** (q / 10 + 0.001 * (q - 35) ** 2)
    expected = (10 ** (0.025 / 3) - 1) * 100
    assert bd_rate(anchor, q, test, q, "cubic") == pytest.approx(expected, rel=1e-6)
    # pchip is not exact on a parabola but close with 6 points
    assert bd_rate(anchor, q, test, q, "pchip") == pytest.approx(expected, abs=0.1)


def test_hand_checked_pchip_on_piecewise_linear_difference():
    # test = anchor shifted by -0.05 decades on the overlap [31, 40]: exactly -10.87 %
    q_a = np.array([28.0, 31.0, 34.0, 37.0, 40.0])
    q_t = np.array([31.0, 34.0, 37.0, 40.0, 43.0])
    r_a = 10 ** (q_a / 10)
    r_t = 10 ** (q_t / 10 - 0.05)
    assert bd_rate(r_a, q_a, r_t, q_t, "pchip") == pytest.approx((10**-0.05 - 1) * 100, abs=1e-6)


def test_errors_for_unusable_curves():
    with pytest.raises(BDRateError, match="at least 4"):
        bd_rate(RATES[:3], PSNR[:3], RATES, PSNR)
    with pytest.raises(BDRateError, match="do not overlap"):
        bd_rate(RATES, PSNR, RATES, PSNR + 20)
    with pytest.raises(BDRateError, match="positive"):
        bd_rate(-RATES, PSNR, RATES, PSNR)
    with pytest.raises(BDRateError, match="repeated"):
        bd_rate(RATES, [28, 31, 31, 37, 40], RATES, PSNR)


def test_non_monotonic_curve_warns():
    with pytest.warns(UserWarning, match="does not increase"):
        value = bd_rate(RATES, [28, 31, 30.5, 37, 40], RATES, PSNR)
    assert math.isfinite(value)


def test_console_script_reads_csv_and_summaries(tmp_path):
    anchor = tmp_path / "anchor.csv"
    anchor.write_text("bpp,psnr,map\n" + "".join(f"{r},{q},{q / 100}\n" for r, q in zip(RATES, PSNR)))
    test = tmp_path / "summaries.json"
    test.write_text(json.dumps([{"bpp": 0.9 * r, "psnr": q, "map": q / 100} for r, q in zip(RATES, PSNR)]))
    result = run_cli("vcm-bdrate", "--metric", "map", str(anchor), str(test), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "BD-rate map pchip: -10.00%"
    bad = tmp_path / "short.csv"
    bad.write_text("bpp,psnr\n0.1,30\n0.2,32\n")
    result = run_cli("vcm-bdrate", str(anchor), str(bad), cwd=tmp_path)
    assert result.returncode == 2 and "at least 4" in result.stderr
    result = run_cli("vcm-bdrate", "--metric", "vmaf", str(anchor), str(test), cwd=tmp_path)
    assert result.returncode == 2 and "no vmaf column" in result.stderr
