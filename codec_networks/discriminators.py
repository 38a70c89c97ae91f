"""PatchGAN discriminator (pix2pix, Isola et al. 2017): one real/fake logit per overlapping patch."""

from __future__ import annotations

from torch import nn


class PatchDiscriminator(nn.Module):
    """n_layers stride-2 convolutions then two stride-1 ones; with n_layers=3 each logit sees a 70×70
    patch. Instance norm rather than batch norm, so that DDP needs no synchronised statistics."""

    def __init__(self, in_channels: int = 3, channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = channels
        for n in range(1, n_layers + 1):
            out = channels * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(width, out, 4, stride, 1),
                nn.InstanceNorm2d(out, affine=True),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x * 2 - 1)  # images in [0, 1] -> [-1, 1]
