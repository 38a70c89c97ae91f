"""Post-filtered conventional codecs: per-block filter choice (method 1) and bias-only finetuning
(method 9), with their side information in real HEVC streams."""

import pytest
import torch

from codec_networks.postfilter_codecs import AdaptedFilterCodec, BlockFilterCodec, block_means, parameter_names
from codec_networks.postfilters import FilterBank, QPConditionedFilter
from codec_networks.side_info import decode_symbols, unframe
from conventional_codecs import CodecError, PyAVIntraCodec
from datamodules.image_io import load_rgb
from datamodules.sample import VAL_IMAGES, sample_image_paths
from vcmlab.checkpoints import load_filter_bank


@pytest.fixture(scope="module")
def photo():
    return load_rgb(sample_image_paths(VAL_IMAGES)[0])[:, :200, :296]  # chelsea, partial edge blocks at 64


def _trained_looking_bank(filters=3, seed=0):
    torch.manual_seed(seed)
    bank = FilterBank(filters=filters, channels=8, blocks=1)
    for f in bank.filters:  # non-trivial filters: some help some blocks, most hurt
        torch.nn.init.normal_(f.tail.weight, std=0.02)
    return bank


def test_block_choice_round_trips_counts_its_bits_and_never_hurts_a_block(photo):
    hevc = PyAVIntraCodec("hevc", qp=42, preset="ultrafast")
    codec = BlockFilterCodec(hevc, _trained_looking_bank(), qp=42, block_size=64)
    data = codec.encode(photo)
    side, payload = unframe(data, "t")
    assert len(data) > len(payload) and codec.last_encode_info["side_info_bytes"] == len(side)
    choices = torch.tensor(decode_symbols(side, 4 * 5, codec.bank.choice_pmf().tolist())).view(4, 5)
    assert [int((choices == j).sum()) for j in range(4)] == [codec.last_encode_info[f"choice_{j}"] for j in range(4)]

    decoded = BlockFilterCodec(hevc, codec.bank, qp=42, block_size=64).decode(data)  # a separate receiver
    plain = hevc.decode(payload)
    assert torch.equal(decoded, codec.compose(plain, choices))
    err_filtered = block_means((decoded - photo).pow(2).mean(0, keepdim=True), 64)
    err_plain = block_means((plain - photo).pow(2).mean(0, keepdim=True), 64)
    assert (err_filtered <= err_plain).all()
    assert torch.equal(err_filtered == err_plain, (choices == 0)[None]) or (choices == 0).all()


def test_corrupt_side_information_fails_clearly(photo):
    hevc = PyAVIntraCodec("hevc", qp=42, preset="ultrafast")
    codec = BlockFilterCodec(hevc, _trained_looking_bank(), qp=42, block_size=64)
    data = codec.encode(photo)
    with pytest.raises(CodecError, match="truncated"):
        codec.decode(data[:3])
    with pytest.raises(ValueError, match="objective"):
        BlockFilterCodec(hevc, codec.bank, qp=42, objective="psnr")


@pytest.mark.parametrize("params", ["bias", "all"])
def test_finetuning_changes_only_what_it_may_and_the_decoder_rebuilds_the_same_filter(photo, params):
    torch.manual_seed(0)
    base = QPConditionedFilter(channels=8, blocks=1)
    torch.nn.init.normal_(base.tail.weight, std=0.01)
    hevc = PyAVIntraCodec("hevc", qp=42, preset="ultrafast")
    sender = AdaptedFilterCodec(hevc, base, qp=42, params=params, adam_steps=15, lr=3e-3, quantisation_step=1 / 512)
    data = sender.encode(photo)
    tuned, trained = dict(sender.last_filter.named_parameters()), dict(base.named_parameters())
    changed = {n for n in trained if not torch.equal(tuned[n], trained[n])}
    assert (
        changed and all(n.endswith("bias") for n in changed)
        if params == "bias"
        else any(n.endswith("weight") for n in changed)
    )
    assert changed <= set(parameter_names(base, params))

    receiver = AdaptedFilterCodec(hevc, base, qp=42, params=params, quantisation_step=1 / 512)  # a shared codec setting
    side, payload = unframe(data, "t")
    assert sender.last_encode_info["side_info_bytes"] == len(side) > 0
    decoded = receiver.decode(data)
    with torch.no_grad():
        expected = sender.last_filter(hevc.decode(payload)[None], 42.0)[0].clamp(0, 1)
    assert torch.equal(decoded, expected)  # the decoder runs exactly the encoder's quantised filter
    # after quantisation every delta is a whole number of steps
    for n in changed:
        steps = (tuned[n] - trained[n]) * 512
        assert torch.allclose(steps, steps.round(), atol=1e-3)


def test_bias_finetuning_improves_the_image_it_is_fitted_on(photo):
    torch.manual_seed(0)
    base = QPConditionedFilter(channels=8, blocks=1)
    hevc = PyAVIntraCodec("hevc", qp=42, preset="ultrafast")
    plain = AdaptedFilterCodec(hevc, base, qp=42, params="none")
    adapted = AdaptedFilterCodec(hevc, base, qp=42, params="bias", adam_steps=30, lr=3e-3, quantisation_step=1 / 1024)
    before = (plain.decode(plain.encode(photo)) - photo).pow(2).mean()
    after = (adapted.decode(adapted.encode(photo)) - photo).pow(2).mean()
    assert after < before
    assert 0 < adapted.last_encode_info["side_info_bytes"] < 200 and plain.last_encode_info["side_info_bytes"] == 0


def test_filter_checkpoint_loading_refuses_other_files(trained_run, tmp_path):
    with pytest.raises(ValueError, match="not a post-filter checkpoint"):
        load_filter_bank(trained_run / "checkpoints" / "last.ckpt")
    with pytest.raises(FileNotFoundError):
        load_filter_bank(tmp_path / "missing.ckpt")


def test_vcm_eval_with_trained_filters_then_one_bd_rate_table(filters_run, tmp_path):
    import json

    from tests.conftest import run_cli

    ckpt = filters_run / "checkpoints" / "last.ckpt"
    common = ["codec.ladder=[32,37,42,47]", "codec.codec.preset=ultrafast", f"paths.log_dir={tmp_path}"]
    runs = {
        "hevc": ["codec=hevc"],
        "filters": [
            "codec=hevc_postfilter",
            f"codec.postfilter.ckpt_path={ckpt}",
            "codec.postfilter.block_size=64",
            "logger=wandb",
        ],
        "bias": [
            "codec=hevc_bias_finetune",
            f"codec.postfilter.ckpt_path={ckpt}",
            "codec.postfilter.adapt.adam_steps=3",
        ],
    }
    for name, overrides in runs.items():
        result = run_cli("vcm-eval", *overrides, *common, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    plain = json.loads((tmp_path / "hevc" / "summaries.json").read_text())
    filtered = json.loads((tmp_path / "filters" / "summaries.json").read_text())
    for p, f in zip(plain, filtered):
        assert f["bpp"] > p["bpp"] and f["side_info_bpp"] > 0  # index bits are in the rate
        assert f["psnr"] >= p["psnr"]  # per-block choice with "no filter" among the options
        assert len(f["filter_usage"]) == 3 and sum(f["filter_usage"]) == pytest.approx(1)
    run = next((tmp_path / "filters" / "wandb").glob("offline-run-*"))
    assert b"eval/filter_usage/hevc_qp37_pf2" in next(run.glob("*.wandb")).read_bytes()  # the histogram's record
    bias = json.loads((tmp_path / "bias" / "summaries.json").read_text())
    assert all(b["name"].endswith("_pf_bias") and b["side_info_bpp"] >= 0 for b in bias) and any(
        b["side_info_bpp"] > 0 for b in bias
    )

    table = tmp_path / "table.json"
    result = run_cli(
        "vcm-bdrate",
        str(tmp_path / "hevc" / "summaries.json"),
        str(tmp_path / "filters" / "summaries.json"),
        str(tmp_path / "bias" / "summaries.json"),
        "--metric",
        "psnr",
        "--metric",
        "ms_ssim",
        "--json",
        str(table),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "| filters |" in result.stdout and "BD-rate ms_ssim" in result.stdout
    rows = json.loads(table.read_text())["rows"]
    assert [r["test"] for r in rows] == ["filters", "bias"] and all("bd_rate_psnr" in r for r in rows)


def test_block_choice_by_task_features_round_trips(photo):
    from tests.helpers import FeatureTask

    hevc = PyAVIntraCodec("hevc", qp=42, preset="ultrafast")
    codec = BlockFilterCodec(hevc, _trained_looking_bank(), qp=42, block_size=64, objective="task", task=FeatureTask())
    data = codec.encode(photo)
    side, payload = unframe(data, "t")
    choices = torch.tensor(decode_symbols(side, 20, codec.bank.choice_pmf().tolist())).view(4, 5)
    plain = hevc.decode(payload)
    candidates = torch.stack([plain, *(codec._filtered(plain, j) for j in range(3))])
    assert torch.equal(choices, codec.block_costs(candidates, photo).argmin(0))
    assert torch.equal(codec.decode(data), codec.compose(plain, choices))
    with pytest.raises(ValueError, match="task network"):
        BlockFilterCodec(hevc, codec.bank, qp=42, objective="task")


def test_an_update_that_does_not_help_is_not_sent(photo):
    torch.manual_seed(0)
    base = QPConditionedFilter(channels=8, blocks=1)
    hevc = PyAVIntraCodec("hevc", qp=42, preset="ultrafast")
    wild = AdaptedFilterCodec(hevc, base, qp=42, params="all", adam_steps=3, lr=1.0)  # Adam at lr 1 wrecks the filter
    data = wild.encode(photo)
    assert wild.last_encode_info["side_info_bytes"] == 0 and wild.last_filter is base
    with torch.no_grad():
        expected = base(hevc.decode(unframe(data, "t")[1])[None], 42.0)[0].clamp(0, 1)
    assert torch.equal(AdaptedFilterCodec(hevc, base, qp=42, params="all").decode(data), expected)
