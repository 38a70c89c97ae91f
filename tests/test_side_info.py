"""Entropy-coded side information: rANS round trips, escapes, framing and its errors."""

import pytest
import torch

from codec_networks.side_info import decode_integers, decode_symbols, encode_integers, encode_symbols, frame, unframe
from conventional_codecs import CodecError


def test_symbols_round_trip_and_a_skewed_prior_codes_shorter():
    symbols = [0, 1, 1, 1, 4, 1, 0, 1, 1, 2] * 20
    skewed = [0.1, 0.7, 0.1, 0.05, 0.05]
    assert decode_symbols(encode_symbols(symbols, skewed), len(symbols), skewed) == symbols
    assert decode_symbols(encode_symbols(symbols, [1] * 5), len(symbols), [1] * 5) == symbols
    assert len(encode_symbols(symbols, skewed)) < len(encode_symbols(symbols, [1] * 5))


def test_integers_round_trip_including_values_far_outside_the_table():
    values = torch.cat([(torch.randn(300) * 20).round(), torch.tensor([0.0, 70000, -70000, 1])]).long()
    data = encode_integers(values)
    assert torch.equal(decode_integers(data, len(values)), values)
    # close to the Laplacian entropy: far fewer than 4 bytes per value
    assert len(data) < 300 and len(encode_integers(torch.zeros(1000, dtype=torch.long))) < 20


def test_frame_round_trips_any_length_and_refuses_truncation():
    for n in (0, 1, 127, 128, 300, 20000):
        side = bytes(range(256)) * (n // 256) + bytes(n % 256)
        assert unframe(frame(side, b"payload"), "t") == (side, b"payload")
    with pytest.raises(CodecError, match="truncated"):
        unframe(frame(b"x" * 300, b"")[:100], "t")
    with pytest.raises(CodecError, match="truncated"):
        unframe(b"", "t")
    with pytest.raises(CodecError, match="corrupt"):
        decode_integers(b"\xff\x00", 3)
