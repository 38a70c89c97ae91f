"""Method 10's bias sets: fitted by overfitting + k-means, index signalled and honoured by the decoder."""

import pytest
import torch
from torch.func import functional_call

from codec_networks import LearnedCodec
from codec_networks.bias_sets import BiasSetCodec, decoder_biases, fit_bias_sets, kmeans
from codec_networks.bitstream import unpack
from codec_networks.latents import decoder_latent
from codec_networks.padding import crop_to, pad_to_multiple
from codec_networks.parameter_vectors import flatten, unflatten
from datamodules import load_rgb
from datamodules.sample import TRAIN_IMAGES, VAL_IMAGES, sample_image_paths
from tests.conftest import run_cli
from vcmlab.checkpoints import load_codec


def test_kmeans_finds_separated_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]])
    points = torch.cat([c + 0.1 * torch.randn(20, 2) for c in centres])
    found = kmeans(points, 3)
    assert torch.cdist(found, centres).min(0).values.max() < 0.2
    with pytest.raises(ValueError, match="at least 3"):
        kmeans(points[:2], 3)


def test_index_round_trips_and_selects_the_same_set(trained_run):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    model = load_codec(ckpt)
    patches = [load_rgb(p)[:, 100:164, 100:164] for p in sample_image_paths(TRAIN_IMAGES)]
    sets = fit_bias_sets(model, patches, k=3, steps=15, lr=1e-2)
    trained = flatten(decoder_biases(model))
    assert sets.shape == (3, trained.numel()) and not torch.allclose(sets[0], trained)

    sender = BiasSetCodec(LearnedCodec(load_codec(ckpt)), sets)
    receiver = BiasSetCodec(LearnedCodec(load_codec(ckpt)), sets)  # built on its own
    plain = LearnedCodec(load_codec(ckpt))
    for image in (load_rgb(p)[:, :96, :128] for p in sample_image_paths(VAL_IMAGES)):
        data = sender.encode(image)
        index = unpack(data, 1, plain.fingerprint).side_info[0]
        assert (
            index == sender.choose(image) and len(data) == len(plain.encode(image)) + 2
        )  # the index and its length byte, counted
        decoded = receiver.decode(data)
        # independently: g_s with the chosen set applied to the latent the decoder receives
        x = pad_to_multiple(image[None])
        params = decoder_biases(model)
        direct = functional_call(
            model.g_s, unflatten(receiver.candidates[index], params), (decoder_latent(model, x),), strict=False
        )
        assert torch.allclose(decoded, crop_to(direct, 96, 128)[0].clamp(0, 1), atol=1e-4)
        plain_error = (plain.decode(plain.encode(image)) - image).pow(2).mean()
        assert (decoded - image).pow(2).mean() <= plain_error + 1e-7  # candidate 0 = trained biases
    assert torch.equal(flatten(decoder_biases(receiver.codec.model)), trained)  # biases restored


def test_wrong_sets_and_side_info_are_refused(trained_run):
    codec = LearnedCodec(load_codec(trained_run / "checkpoints" / "last.ckpt"))
    with pytest.raises(ValueError, match="do not fit this decoder"):
        BiasSetCodec(codec, torch.zeros(2, 5))
    bias = BiasSetCodec(codec, torch.zeros(2, flatten(decoder_biases(codec.model)).numel()))
    image = torch.rand(3, 64, 64)
    with pytest.raises(ValueError, match="side info"):
        bias.decode(codec.encode(image, side_info=bytes([9])))


def test_fit_command_then_vcm_eval_with_bias_sets(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    result = run_cli(
        "vcm-fit-bias-sets",
        "--checkpoint",
        str(ckpt),
        "--k",
        "2",
        "--patch",
        "64",
        "--patches-per-image",
        "1",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "sets.pt"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_cli(
        "vcm-eval",
        f"codec.ckpt_paths=[{ckpt}]",
        f"codec.bias_sets=[{tmp_path / 'sets.pt'}]",
        "data.val_crop_size=64",
        f"hydra.run.dir={tmp_path / 'eval'}",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "eval" / "rate_point_0" / "per_image.csv").read_text().splitlines()
    assert rows[0].endswith("bias_set") and all(r.split(",")[-1] in {"0", "1", "2"} for r in rows[1:])
