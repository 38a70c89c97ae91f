"""Nothing read from a file chooses what code runs: crafted checkpoints for every loader."""

import pytest
import torch
from compressai.models import ScaleHyperprior

from task_networks.weights import load_weights
from tests.conftest import FAST, run_cli
from vcmlab.checkpoints import (
    drop_foreign_callback_paths,
    load_codec,
    load_codec_weights,
    load_filter_bank,
    read_checkpoint,
    read_tensor_file,
)
from vcmlab.errors import CheckpointError


def craft(source, out, mutate):
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    mutate(checkpoint)
    torch.save(checkpoint, out)
    return out


def opens_marker(marker):
    """A config that, instantiated by Hydra, would create `marker` (builtins.open in write mode)."""
    return {"_target_": "builtins.open", "file": str(marker), "mode": "w"}


@pytest.fixture
def last_ckpt(trained_run):
    return trained_run / "checkpoints" / "last.ckpt"


def test_codec_checkpoint_naming_another_callable_is_refused(last_ckpt, tmp_path):
    marker = tmp_path / "marker"
    evil = craft(
        last_ckpt, tmp_path / "evil.ckpt", lambda c: c["vcmlab_config"].__setitem__("model", opens_marker(marker))
    )
    with pytest.raises(CheckpointError, match=r"model\._target_='builtins.open' is not a registered network"):
        load_codec(evil)
    result = run_cli("vcm-eval", f"codec.ckpt_paths={evil}", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2 and "vcm-eval: error:" in result.stderr and "builtins.open" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli(
        "vcm-fit-bias-sets", "--checkpoint", str(evil), "--k", "1", "--out", str(tmp_path / "s.pt"), cwd=tmp_path
    )
    assert result.returncode == 2 and "vcm-fit-bias-sets: error:" in result.stderr
    assert not marker.exists() and not (tmp_path / "s.pt").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m, marker: m.__setitem__("N", opens_marker(marker)), r"model\.N=.*expected int, got dict"),
        (lambda m, marker: m.__setitem__("_partial_", True), r"model\._partial_ is not an argument"),
        (lambda m, marker: m.__setitem__("N", "${oc.env:HOME}"), r"model\.N='\$\{oc.env:HOME\}': expected int"),
        (lambda m, marker: m.__setitem__("N", True), r"model\.N=True: expected int, got bool"),
        (lambda m, marker: m.__setitem__("N", -4), r"model\.N=-4: must be positive"),
    ],
)
def test_stored_arguments_are_type_checked(last_ckpt, tmp_path, mutate, message):
    marker = tmp_path / "marker"
    evil = craft(last_ckpt, tmp_path / "evil.ckpt", lambda c: mutate(c["vcmlab_config"]["model"], marker))
    with pytest.raises(CheckpointError, match=message):
        load_codec(evil)
    assert not marker.exists()


def test_filter_checkpoint_naming_another_callable_is_refused(last_ckpt, tmp_path):
    marker = tmp_path / "marker"
    evil = craft(
        last_ckpt,
        tmp_path / "evil.ckpt",
        lambda c: c["vcmlab_config"].__setitem__("module", {"filters": opens_marker(marker)}),
    )
    with pytest.raises(CheckpointError, match=r"module\.filters\._target_='builtins.open'"):
        load_filter_bank(evil)
    result = run_cli(
        "vcm-eval",
        "codec=hevc_postfilter",
        f"codec.postfilter.ckpt_path={evil}",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "builtins.open" in result.stderr and not marker.exists()


def test_resume_from_a_crafted_checkpoint_runs_nothing_and_deletes_nothing(last_ckpt, tmp_path):
    """Resume never builds the stored config; ModelCheckpoint's stored paths outside its own directory
    (which it would delete when replacing them) are dropped before Lightning restores the callbacks."""
    marker, victim = tmp_path / "marker", tmp_path / "victim.txt"
    victim.write_text("keep me")
    run_dir = tmp_path / "run"

    def mutate(c):
        c["vcmlab_config"]["model"] = opens_marker(marker)
        for state in c["callbacks"].values():
            if "dirpath" in state:
                state.update(
                    dirpath=str(run_dir / "checkpoints"),
                    best_model_path="s3://bucket/victim",
                    last_model_path=str(victim),
                    kth_best_model_path=str(victim),
                    best_k_models={str(victim): torch.tensor(1e9)},
                )

    evil = craft(last_ckpt, tmp_path / "evil.ckpt", mutate)
    state = next(s for s in read_checkpoint(evil)["callbacks"].values() if "dirpath" in s)
    drop_foreign_callback_paths({"callbacks": {"x": state}})
    assert state["best_k_models"] == {} and state["best_model_path"] == state["last_model_path"] == ""
    result = run_cli(
        "vcm-train",
        *FAST,
        "experiment=lic_hyperprior",
        "logger=none",
        f"ckpt_path={evil}",
        "trainer.max_steps=12",
        "trainer.val_check_interval=4",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 12
    assert victim.read_text() == "keep me" and not marker.exists()


def test_bias_sets_file_must_be_a_finite_tensor(tmp_path):
    torch.save({"not": "a tensor"}, tmp_path / "dict.pt")
    with pytest.raises(CheckpointError, match="holds dict, expected a floating-point tensor"):
        read_tensor_file(tmp_path / "dict.pt", "codec.bias_sets file")
    torch.save(torch.tensor([[1.0, float("nan")]]), tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        read_tensor_file(tmp_path / "nan.pt", "codec.bias_sets file")


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch exploited",))


@pytest.mark.parametrize(
    "load",
    [
        read_checkpoint,
        lambda path: read_tensor_file(path, "codec.bias_sets file"),
        lambda path: load_codec_weights(ScaleHyperprior(8, 8), path),  # MAML / adversarial codec_checkpoint
        lambda path: load_weights(torch.nn.Linear(2, 2), str(path), "task network"),
    ],
    ids=["checkpoint", "bias_sets", "codec_checkpoint", "task_weights"],
)
def test_pickled_code_in_a_file_is_never_run(tmp_path, monkeypatch, load):
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": {}, "payload": _Exploit()}, tmp_path / "pickle.ckpt")
    with pytest.raises(CheckpointError, match=r"refusing .*pickle.ckpt: it holds pickled code .*GLOBAL posix.system"):
        load(tmp_path / "pickle.ckpt")
    assert not (tmp_path / "exploited").exists()


@pytest.mark.parametrize("legacy", ["torch_legacy", "bare_pickle"])
def test_pickled_code_in_a_legacy_format_file_is_never_run(tmp_path, monkeypatch, legacy):
    """Files in torch's pre-1.6 format (some published weights) are read too, under the same
    weights_only unpickler: code in them is refused like code in a zip checkpoint."""
    import pickle

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "legacy.pth"
    if legacy == "torch_legacy":
        torch.save({"state_dict": {}, "payload": _Exploit()}, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps({"payload": _Exploit()}, protocol=2))
    with pytest.raises(CheckpointError, match="legacy.pth"):
        load_weights(torch.nn.Linear(2, 2), str(path), "task network")
    assert not (tmp_path / "exploited").exists()
