import subprocess
import sys

import pytest
import torch
from compressai.models import MeanScaleHyperprior, ScaleHyperprior

from codec_networks import BitstreamError, LearnedCodec
from codec_networks.bitstream import Payload, pack, unpack


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return LearnedCodec(ScaleHyperprior(N=32, M=48))


@pytest.fixture(scope="module")
def image():
    torch.manual_seed(1)
    # smooth content with an odd size, so padding and cropping are exercised
    base = torch.rand(3, 10, 12)
    return torch.nn.functional.interpolate(base[None], size=(70, 90), mode="bilinear", align_corners=False)[0]


def test_container_round_trip():
    payload = Payload(b"12345678", 70, 90, (5, 6), (b"abc", b"", b"\x00" * 300))
    assert unpack(pack(payload)) == payload


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda d: d[:-10], "checksum|length"),
        (lambda d: d[:12], "truncated"),
        (lambda d: d[:30] + bytes([d[30] ^ 0x01]) + d[31:], "checksum"),
        (lambda d: b"JUNK" + d[4:], "magic"),
        (lambda d: d[:4] + b"\x07" + d[5:], "version"),
        (lambda d: b"", "magic"),
    ],
)
def test_damaged_bitstreams_give_clear_errors(codec, image, mangle, message):
    data = codec.encode(image)
    with pytest.raises(BitstreamError, match=message):
        codec.decode(mangle(data))


def test_round_trip_matches_quantised_forward_pass(codec, image):
    data = codec.encode(image)
    decoded = codec.decode(data)
    assert decoded.shape == image.shape
    with torch.no_grad():
        from codec_networks.padding import crop_to, pad_to_multiple

        out = codec.model(pad_to_multiple(image[None]))
        forward = crop_to(out["x_hat"].clamp(0, 1), *image.shape[-2:])[0]
        estimated_bits = sum((-torch.log2(p)).sum() for p in out["likelihoods"].values())
    assert torch.allclose(decoded, forward, atol=1e-4)
    actual_bits = 8 * len(data)
    assert actual_bits > estimated_bits  # rANS plus container overhead costs something...
    assert actual_bits < estimated_bits * 1.5 + 8 * 200  # ...but not much


def test_decoding_twice_gives_identical_images(codec, image):
    data = codec.encode(image)
    assert torch.equal(codec.decode(data), codec.decode(data))


def test_stream_of_another_model_is_refused(codec, image):
    torch.manual_seed(5)
    other = LearnedCodec(ScaleHyperprior(N=32, M=48))
    with pytest.raises(BitstreamError, match="another model"):
        other.decode(codec.encode(image))


def test_mean_scale_hyperprior_round_trip(image):
    torch.manual_seed(0)
    codec = LearnedCodec(MeanScaleHyperprior(N=32, M=48))
    assert codec.decode(codec.encode(image)).shape == image.shape


def test_encode_rejects_wrong_shapes(codec):
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        codec.encode(torch.rand(1, 3, 64, 64))


def test_decode_in_a_separate_process_is_identical(codec, image, tmp_path):
    torch.save(codec.model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "image.bin").write_bytes(codec.encode(image))
    script = f"""
import torch
from compressai.models import ScaleHyperprior
from codec_networks import LearnedCodec
model = ScaleHyperprior(N=32, M=48)
model.load_state_dict(torch.load({str(tmp_path / 'model.pt')!r}, weights_only=True))
out = LearnedCodec(model).decode(open({str(tmp_path / 'image.bin')!r}, 'rb').read())
torch.save(out, {str(tmp_path / 'decoded.pt')!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert torch.equal(torch.load(tmp_path / "decoded.pt", weights_only=True), codec.decode(codec.encode(image)))


def test_side_information_round_trips_and_counts_in_the_rate(codec, image):
    plain = codec.encode(image)
    with_side = codec.encode(image, side_info=b"\x01\x02\x03")
    assert len(with_side) == len(plain) + 3
    decoded, side = codec.decode_with_side_info(with_side)
    assert side == b"\x01\x02\x03" and torch.equal(decoded, codec.decode(plain))


def rate_descent(steps: int, start_scale: float = 1.0):
    """A latent refiner that lowers the estimated rate of y by gradient descent (noise surrogate)."""
    def refine(model, x, y):
        y = (y * start_scale).requires_grad_()
        optimizer = torch.optim.Adam([y], lr=0.5)
        for _ in range(steps):
            # training=True: additive-noise quantisation, so the rate has a gradient (eval mode rounds)
            z_hat, z_lik = model.entropy_bottleneck(model.h_a(torch.abs(y)), training=True)
            _, y_lik = model.gaussian_conditional(y, model.h_s(z_hat), training=True)
            rate = -(torch.log2(y_lik).sum() + torch.log2(z_lik).sum())
            optimizer.zero_grad()
            rate.backward()
            optimizer.step()
        return y
    return refine


def test_latent_refiner_changes_what_is_coded_but_not_the_decoder(codec, image):
    # start from an inflated latent (expensive to code) so that the descent has rate to remove
    inflated = LearnedCodec(codec.model, latent_refiner=rate_descent(0, start_scale=20.0)).encode(image)
    refined = LearnedCodec(codec.model, latent_refiner=rate_descent(30, start_scale=20.0))
    plain_bytes, refined_bytes = codec.encode(image), refined.encode(image)
    assert len(refined_bytes) < 0.8 * len(inflated)  # the refiner's gradient steps reached the coded latent
    decoded = codec.decode(refined_bytes)  # a decoder that knows nothing of the refiner
    assert decoded.shape == image.shape
    with torch.inference_mode():  # as vcm-eval runs it
        assert refined.encode(image) != plain_bytes
    assert "g_a.g_a" not in "".join(codec.model.state_dict())  # the model is restored after encoding
