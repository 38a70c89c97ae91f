"""vcm-eval at scale: worker processes, shards and their merge, and resuming a killed run all give the
outputs of one uninterrupted single-process run (timings aside), and inconsistent inputs are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import open_dict

from tests.conftest import SHARED_DATA
from tests.helpers import openimages_stand_ins
from vcmlab import PROJECT_ROOT
from vcmlab.errors import ConfigError, InputError
from vcmlab.evaluation import evaluate
from vcmlab.evaluation.manifest import MANIFEST
from vcmlab.evaluation.outputs import reported_outputs as outputs

OIV6 = SHARED_DATA / "oiv6-mpeg-vcm"
JPEG = ["codec=jpeg", "codec.ladder=[75,30]"]


def run_eval(make_cfg, out: Path, *overrides: str) -> list[dict]:
    cfg = make_cfg(*overrides, config_name="eval", fast=False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return evaluate(cfg)


@pytest.mark.parametrize("codec", ["jpeg", "learned"])
def test_workers_give_the_outputs_of_one_process(make_cfg, tmp_path, codec, request):
    if codec == "learned":
        ckpt = request.getfixturevalue("trained_run") / "checkpoints" / "last.ckpt"
        overrides = [f"codec.ckpt_paths=[{ckpt}]"]
    else:
        overrides = JPEG
    one = run_eval(make_cfg, tmp_path / "one", *overrides)
    two = run_eval(make_cfg, tmp_path / "two", *overrides, "workers=2")
    assert len(one) == len(two) > 0
    a, b = outputs(tmp_path / "one"), outputs(tmp_path / "two")
    assert any(k.endswith(".bin") for k in a) and "summaries.json" in a
    assert a == b
    manifest = json.loads((tmp_path / "two" / MANIFEST).read_text())
    assert manifest["complete"] and manifest["run"]["coded"] == 2 * len(two)


@pytest.mark.skipif(not OIV6.is_dir(), reason="../shared/data/oiv6-mpeg-vcm not present")
def test_two_shards_merged_equal_one_run_with_map_on_the_merged_predictions(make_cfg, tmp_path):
    _, data = openimages_stand_ins(tmp_path, 7, OIV6 / "detection_validation_input_5k.lst")
    oracle = "tests.helpers.OpenImagesOracle"
    overrides = [
        *data,
        *JPEG,
        f"+task={{_target_: {oracle}, image_dir: {tmp_path / 'img'}, bbox_csv: ${{data.val.bbox_csv}}, "
        "labels_csv: ${data.val.labels_csv}, keep: 2}",
    ]
    whole = run_eval(make_cfg, tmp_path / "whole", *overrides)
    assert 0.2 < whole[0]["map"] < 0.95 and 0 < whole[0]["coco_map"] < 1, whole[0]
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    for i, out in enumerate(shards):
        assert run_eval(make_cfg, out, *overrides, f"shard={i}", "num_shards=2") == []
        assert not (out / "summaries.json").exists()  # a shard's own mAP would mean nothing
    sizes = [json.loads((s / MANIFEST).read_text())["records"]["jpeg_q75"] for s in shards]
    assert sizes == [4, 3]
    merged = run_eval(make_cfg, tmp_path / "merged", f"merge=[{shards[0]},{shards[1]}]")
    assert merged[0]["map"] == whole[0]["map"]
    expected = {k: v for k, v in outputs(tmp_path / "whole").items() if not k.endswith(".bin")}
    assert outputs(tmp_path / "merged") == expected


def test_inconsistent_shards_and_runs_are_refused(make_cfg, tmp_path, monkeypatch):
    a, b, c, other = (tmp_path / n for n in ("a", "b", "c", "other"))
    run_eval(make_cfg, a, *JPEG, "shard=0", "num_shards=2")
    run_eval(make_cfg, b, *JPEG, "shard=1", "num_shards=2")
    run_eval(make_cfg, c, *JPEG, "shard=0", "num_shards=2")
    run_eval(make_cfg, other, "codec=jpeg", "codec.ladder=[75,20]", "shard=1", "num_shards=2")

    def merge(*dirs):
        return run_eval(make_cfg, tmp_path / "merged", f"merge=[{','.join(map(str, dirs))}]")

    with pytest.raises(InputError, match=rf"{other}.*another evaluation.*codec\.ladder"):
        merge(a, other)
    with pytest.raises(InputError, match=rf"shard 0 given twice.*{a}.*{c}"):
        merge(a, c, b)
    with pytest.raises(InputError, match=r"shard\(s\) \[1\] of 2 missing"):
        merge(a)
    with pytest.raises(InputError, match=r"not a vcm-eval image run directory"):
        merge(a, tmp_path)
    manifest = json.loads((b / MANIFEST).read_text())
    (b / MANIFEST).write_text(json.dumps(manifest | {"complete": False}))
    with pytest.raises(InputError, match=rf"{b}: shard 1 did not finish"):
        merge(a, b)
    (b / MANIFEST).write_text(json.dumps(manifest))
    next((b / "jpeg_q30" / "records").glob("*.json")).unlink()
    with pytest.raises(InputError, match=r"jpeg_q30: 0 records where the shard finished with 1"):
        merge(a, b)
    # a rerun into a directory that holds another evaluation, or another shard of it
    with pytest.raises(ConfigError, match=r"holds another evaluation \(differs in codec\.ladder\)"):
        run_eval(make_cfg, a, "codec=jpeg", "codec.ladder=[75,20]", "shard=0", "num_shards=2")
    with pytest.raises(ConfigError, match=r"holds shard=0, not 1"):
        run_eval(make_cfg, a, *JPEG, "shard=1", "num_shards=2")
    with pytest.raises(ConfigError, match=r"shard must lie in \[0, num_shards\)"):
        run_eval(make_cfg, tmp_path / "bad", *JPEG, "shard=2", "num_shards=2")
    # the same settings with other vcmlab code (an upgrade, an edit): its records are not reused
    monkeypatch.setattr("vcmlab.evaluation.images.code_digest", lambda: "0" * 64)
    with pytest.raises(ConfigError, match=r"holds another evaluation \(differs in vcmlab's code\)"):
        run_eval(make_cfg, a, *JPEG, "shard=0", "num_shards=2")


def _eval_command(log_dir: Path, run_name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vcmlab.evaluate",
        "codec=jpeg",
        "codec.ladder=[90,50,10]",
        "codec.codec._target_=tests.helpers.CountingPillowCodec",
        f"paths.log_dir={log_dir}",
        f"run_name={run_name}",
    ]


def test_a_killed_run_resumes_and_recodes_only_what_is_missing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "WANDB_MODE": "offline"}
    encodes = tmp_path / "encodes.log"
    run_env = env | {"VCMLAB_TEST_ENCODE_LOG": str(encodes), "VCMLAB_TEST_PAUSE_AT": "4"}
    # 2 images x 3 rate points: the 4th encode is rate point 1's second image
    process = subprocess.Popen(_eval_command(tmp_path, "run"), cwd=PROJECT_ROOT, env=run_env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not Path(f"{encodes}.paused").exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the run never reached its 4th encode"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    run = tmp_path / "eval" / "runs" / "run"
    assert not (run / "summaries.json").exists()
    assert not json.loads((run / MANIFEST).read_text())["complete"]
    # a damaged bitstream is not taken as done, nor is a stray temporary file
    streams = sorted((run / "jpeg_q90" / "bitstreams").glob("*.bin"))
    streams[0].write_bytes(streams[0].read_bytes()[:-10])
    (run / "jpeg_q50" / "bitstreams" / ".x.bin.123.tmp").write_bytes(b"partial")
    kept = {p: p.stat().st_ino for p in run.rglob("*.bin") if p != streams[0]}
    assert len(kept) == 2

    encodes.unlink()
    counted = env | {"VCMLAB_TEST_ENCODE_LOG": str(encodes)}
    resumed = subprocess.run(_eval_command(tmp_path, "run"), cwd=PROJECT_ROOT, env=counted, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert len(encodes.read_text().splitlines()) == 4  # the damaged one and the three never finished
    assert all(p.stat().st_ino == ino for p, ino in kept.items())  # the verified ones were not rewritten
    assert "(4 coded, 2 kept from an earlier run)" in resumed.stderr.decode() + resumed.stdout.decode()

    whole = subprocess.run(_eval_command(tmp_path, "whole"), cwd=PROJECT_ROOT, env=env, capture_output=True)
    assert whole.returncode == 0, whole.stderr.decode()[-2000:]
    assert outputs(run) == outputs(tmp_path / "eval" / "runs" / "whole")


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_shards_through_a_hydra_launcher_and_vcm_eval_merge(tmp_path, launcher):
    """submitit_local is the plugin hydra/launcher=slurm_eval uses, running its jobs on this machine."""
    from tests.conftest import run_cli

    pytest.importorskip(f"hydra_plugins.hydra_{launcher.split('_')[0]}_launcher")
    swept = run_cli(
        "vcm-eval",
        "-m",
        *JPEG,
        "shard=0,1",
        "num_shards=2",
        f"hydra/launcher={launcher}",
        f"paths.log_dir={tmp_path}",
        "run_name=sharded",
        cwd=tmp_path,
    )
    assert swept.returncode == 0, swept.stderr[-2000:]
    jobs = sorted((tmp_path / "eval" / "multiruns" / "sharded").glob("[0-9]*"))
    assert len(jobs) == 2
    merged = run_cli("vcm-eval-merge", *map(str, jobs), f"paths.log_dir={tmp_path}", "run_name=merged", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr[-2000:]
    whole = run_cli("vcm-eval", *JPEG, f"paths.log_dir={tmp_path}", "run_name=whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    runs = tmp_path / "eval" / "runs"
    expected = {k: v for k, v in outputs(runs / "whole").items() if not k.endswith(".bin")}
    assert outputs(runs / "merged") == expected


def test_shards_and_their_merge_log_into_one_wandb_group(make_cfg, tmp_path, monkeypatch):
    from vcmlab.evaluation import outputs

    made = []
    real = outputs._wandb_loggers

    def recording(cfg, group, job_type):
        loggers = real(cfg, group, job_type)
        made.extend((lg._wandb_init.get("group"), lg._wandb_init.get("job_type")) for lg in loggers)
        return loggers

    monkeypatch.setattr(outputs, "_wandb_loggers", recording)
    shards = [tmp_path / "s0", tmp_path / "s1"]
    for i, out in enumerate(shards):
        run_eval(make_cfg, out, *JPEG, f"shard={i}", "num_shards=2", "logger=wandb")
    run_eval(make_cfg, tmp_path / "merged", f"merge=[{shards[0]},{shards[1]}]", "logger=wandb")
    group = "eval-" + json.loads((shards[0] / MANIFEST).read_text())["fingerprint"][:12]
    assert made == [(group, "shard_0"), (group, "shard_1"), (group, "merge")]
    assert list((tmp_path / "merged").glob("wandb/offline-run-*"))  # the merge's run, offline


def test_a_rerun_recodes_an_image_whose_content_changed_under_the_same_name(make_cfg, tmp_path):
    """Records and the cached predictions on the originals belong to an image's pixels, not its name:
    after chelsea.png is replaced by another photo, a rerun codes and classifies it again and keeps
    the other image's records."""
    import skimage.data
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).save(photos / f"{name}.png")
    data = ["data=image_folder", f"data.train_dir={photos}", f"data.val_dir={photos}", "data.num_workers=0"]
    overrides = [*data, "codec=jpeg", "codec.ladder=[75]", "task=mobilenet_v2", "metric_reference=uncompressed"]

    def records() -> dict:
        folder = tmp_path / "out" / "jpeg_q75" / "records"
        return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}

    run_eval(make_cfg, tmp_path / "out", *overrides)
    before = records()
    kept = (tmp_path / "out" / "jpeg_q75" / "bitstreams" / "rocket.bin").stat().st_ino
    Image.fromarray(skimage.data.coffee()).save(photos / "chelsea.png")
    run_eval(make_cfg, tmp_path / "out", *overrides)
    after = records()
    assert after["rocket"] == before["rocket"]
    assert (tmp_path / "out" / "jpeg_q75" / "bitstreams" / "rocket.bin").stat().st_ino == kept
    assert after["chelsea"]["source_sha256"] != before["chelsea"]["source_sha256"]
    assert after["chelsea"]["row"]["bytes"] != before["chelsea"]["row"]["bytes"]
    assert after["chelsea"]["task"]["uncompressed"] != before["chelsea"]["task"]["uncompressed"]  # cat -> espresso
