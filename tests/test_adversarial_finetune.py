"""Method 2: only the decoder moves, the bitstream stays byte-identical."""

import pytest
import torch
from hydra.utils import instantiate

from codec_networks import LearnedCodec
from codec_networks.bitstream import unpack
from datamodules import load_rgb
from datamodules.sample import VAL_IMAGES, sample_image_paths
from lightning_modules.adversarial_finetune import discriminator_loss, generator_loss
from vcmlab.checkpoints import load_codec, read_checkpoint
from vcmlab.train import train


def test_fast_dev_run(make_cfg):
    metrics = train(make_cfg("experiment=adversarial_finetune", "debug=fdr", "logger=none"))
    assert metrics["train/disc_loss"] > 0 and "val/checkerboard" in metrics


def test_only_the_decoder_moves_and_the_bitstream_is_unchanged(trained_run, make_cfg, tmp_path):
    source = trained_run / "checkpoints" / "last.ckpt"
    cfg = make_cfg(
        "experiment=adversarial_finetune",
        "task=none",
        "module.task_weight=0",
        "module.mse_weight=0.01",
        "module.optimizer.lr=1e-3",
        f"module.codec_checkpoint={source}",
        "logger=none",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
    )
    train(cfg)
    before = read_checkpoint(source)["state_dict"]
    after = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]
    codec_keys = [k for k in before if k.startswith("codec.")]
    moved = {k for k in codec_keys if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("codec.g_s.") for k in moved)
    assert any(k.startswith("discriminator.") for k in after)

    image = load_rgb(sample_image_paths(VAL_IMAGES)[0])[:, :128, :192]
    original, finetuned = (
        LearnedCodec(load_codec(source)),
        LearnedCodec(load_codec(tmp_path / "checkpoints" / "last.ckpt")),
    )
    a = unpack(original.encode(image), 1, original.fingerprint)
    b = unpack(finetuned.encode(image), 1, finetuned.fingerprint)
    assert a.streams == b.streams and (a.height, a.width) == (
        b.height,
        b.width,
    )  # the entropy-coded payload is byte-identical
    assert a.fingerprint != b.fingerprint  # the model id covers the (new) decoder weights
    assert not torch.equal(original.decode(original.encode(image)), finetuned.decode(finetuned.encode(image)))


@pytest.mark.parametrize("kind", ["non_saturating", "hinge", "least_squares"])
def test_gan_losses_prefer_real_over_fake(kind):
    real, fake = torch.full((4, 1, 5, 5), 3.0), torch.full((4, 1, 5, 5), -3.0)
    assert discriminator_loss(real, fake, kind) < discriminator_loss(fake, real, kind)
    assert generator_loss(real, kind) < generator_loss(fake, kind)
    with pytest.raises(ValueError, match="gan_loss"):
        generator_loss(real, "wasserstein")


def test_checkpoint_of_another_model_is_refused(trained_run, make_cfg):
    cfg = make_cfg(
        "experiment=adversarial_finetune",
        "model.N=48",
        f"module.codec_checkpoint={trained_run / 'checkpoints' / 'last.ckpt'}",
    )
    with pytest.raises(Exception, match="does not fit the configured model"):
        instantiate(cfg.module, codec=instantiate(cfg.model), task=None)
