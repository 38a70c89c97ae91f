"""The CDF table per scale: the nearest entry in log distance, inside LearnedCodec only."""

import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table

from codec_networks.gaussian import nearest_scale_indexes, nearest_scales


def test_each_scale_gets_the_table_entry_nearest_in_log_distance():
    table = get_scale_table(levels=64)
    gc = GaussianConditional(table.tolist())
    scales = torch.cat([torch.exp(torch.empty(2000).uniform_(-3, 6)), table, torch.tensor([0.0, 0.05, 1e4])])
    chosen = nearest_scale_indexes(gc, scales).long()
    bounded = scales.clamp(min=float(table[0]), max=float(table[-1]))
    distance = (torch.log(bounded)[:, None] - torch.log(table)[None]).abs()
    assert torch.allclose(distance.gather(1, chosen[:, None])[:, 0], distance.min(1).values)
    assert torch.equal(chosen[2000 : 2000 + len(table)], torch.arange(len(table)))  # table scales map to themselves
    compressai = gc.build_indexes(scales).long()  # the next larger entry
    assert (chosen <= compressai).all() and (chosen < compressai).float().mean() > 0.3


def test_the_swap_lasts_for_the_block_only():
    gc = GaussianConditional(get_scale_table(levels=64).tolist())
    model = torch.nn.ModuleDict({"gc": gc})
    scales = torch.full((5,), 0.3)
    with nearest_scales(model):
        inside = gc.build_indexes(scales)
    assert torch.equal(inside, nearest_scale_indexes(gc, scales))
    assert "build_indexes" not in vars(gc) and not torch.equal(gc.build_indexes(scales), inside)
