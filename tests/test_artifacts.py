import torch

from codec_networks.discriminators import PatchDiscriminator
from vcm_metrics.artifacts import checkerboard_score


def test_checkerboard_scores_high_and_noise_low():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 128)
    board = ((torch.arange(128)[:, None] + torch.arange(128)[None]) % 2).float() * 0.1 - 0.05
    noise = torch.randn(2, 3, 128, 128) * 0.05
    assert (checkerboard_score(x + board, x) > 0.95).all()
    assert (checkerboard_score(x + noise, x) < 0.05).all()
    mixed = checkerboard_score(x + noise + 0.3 * board, x)
    assert (mixed > 0.05).all() and (mixed < 0.95).all()


def test_patch_discriminator_gives_a_map_of_logits():
    d = PatchDiscriminator(n_layers=3)
    out = d(torch.rand(2, 3, 128, 128))
    assert out.shape[:2] == (2, 1) and out.shape[-1] > 1 and out.shape[-2] > 1
