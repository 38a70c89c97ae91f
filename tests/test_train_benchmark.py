"""The training-overhead benchmark compares like with like: both loops train on the same batches."""

from __future__ import annotations

import pytest

from benchmarks import train_throughput


@pytest.mark.slow
def test_both_loops_see_the_same_batches(tmp_path, monkeypatch):
    tiny = {"overrides": ["model.N=16", "model.M=24", "data.crop_size=64"], "steps": 4, "warmup": 1}
    monkeypatch.setitem(train_throughput.SIZES, "tiny", tiny)
    seen = {}
    for side in ("plain_run", "framework_run"):
        real = getattr(train_throughput, side)

        def recording(*args, _real=real, _side=side):
            rate, batches = _real(*args)
            seen[_side] = batches
            return rate, batches

        monkeypatch.setattr(train_throughput, side, recording)
    result = train_throughput.measure("tiny", 1, tmp_path)
    assert len(seen["plain_run"]) == 4 and seen["plain_run"] == seen["framework_run"]
    assert len(set(seen["plain_run"])) == 4  # four different batches, not one repeated
    ratio = result["time_ratio_vcmlab_over_plain"]["median"]
    assert ratio > 0 and result["data_loading_s_per_batch"] > 0

    # and a loop that saw other batches is caught
    monkeypatch.setattr(train_throughput, "plain_run", lambda *a: (1.0, [0.0] * 4))
    with pytest.raises(AssertionError, match="different batches"):
        train_throughput.measure("tiny", 1, tmp_path)


@pytest.mark.slow
def test_make_profile_writes_a_trace_and_step_shares(tmp_path):
    import json

    from benchmarks import profile_train

    profile_train.main(["--out", str(tmp_path), "--steps", "5", "--warmup", "2", "model.N=16", "model.M=24"])
    result = json.loads((tmp_path / "profile.json").read_text())
    assert json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert result["steps_profiled"] == 3 and abs(sum(result["shares"].values()) - 1) < 1e-9
    assert result["shares"]["vcm/forward"] > 0 and result["shares"]["vcm/backward"] > 0
    assert any(k.startswith("aten::") for k in result["top_operators_self_cpu_s"])
