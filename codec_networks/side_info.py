"""Entropy-coded side information for post-filters (methods 1 and 9), with the codec's range coder.

Symbols are coded against a probability table both sides know (a filter bank's usage prior, or a
discretised Laplacian whose scale index travels in the stream). Values outside the table's support are
escaped by the coder's bypass mode, so any integer round-trips. Side information rides in front of the
conventional codec's stream behind a varint length, and its bytes count in the rate.
"""

from __future__ import annotations

import math

import torch
from compressai._CXX import pmf_to_quantized_cdf

from codec_networks import range_coding
from codec_networks.bitstream import read_varint, write_varint
from vcmlab.errors import BitstreamError

PRECISION = 16  # CompressAI's entropy_coder_precision
TAIL_MASS = 1e-6  # probability left for the escape symbol (out-of-range values)


def quantized_cdf(pmf: list[float] | torch.Tensor) -> list[int]:
    """The CDF table for symbols 0..len(pmf)-1, with an escape symbol after them (CompressAI's layout)."""
    pmf = torch.as_tensor(pmf, dtype=torch.float64).clamp_min(1e-9)
    pmf = pmf / pmf.sum() * (1 - TAIL_MASS)
    return pmf_to_quantized_cdf([*pmf.tolist(), TAIL_MASS], PRECISION)


def encode_symbols(symbols: list[int], pmf: list[float] | torch.Tensor, offset: int = 0) -> bytes:
    """Entropy-code integers; `offset` is the value of the table's first symbol."""
    cdf = quantized_cdf(pmf)
    encoder = range_coding.RangeEncoder()
    range_coding.encode(encoder, [int(s) for s in symbols], [0] * len(symbols), [cdf], [len(cdf)], [offset])
    return range_coding.to_bytes(encoder)


def decode_symbols(data: bytes, count: int, pmf: list[float] | torch.Tensor, offset: int = 0) -> list[int]:
    cdf = quantized_cdf(pmf)
    try:
        return range_coding.decode(range_coding.decoder_for(data), [0] * count, [cdf], [len(cdf)], [offset])
    except ValueError as err:
        raise BitstreamError(f"corrupt side information: {err}") from None


# Integer parameter deltas (method 9) are coded with a discretised Laplacian; the encoder picks the
# scale near the data's that gives the shortest stream and signals its index in one byte.
LAPLACE_SCALES = tuple(0.0625 * 2 ** (i / 2) for i in range(28))  # 0.0625 .. ~724


def laplace_pmf(scale: float, support: int) -> torch.Tensor:
    """P(k) for k in -support..support of a Laplacian of the given scale, integrated over [k-½, k+½]."""
    edges = torch.arange(-support - 0.5, support + 1.0, 1.0, dtype=torch.float64)
    cdf = torch.where(edges < 0, 0.5 * torch.exp(edges / scale), 1 - 0.5 * torch.exp(-edges / scale))
    return cdf[1:] - cdf[:-1]


def encode_integers(values: torch.Tensor) -> bytes:
    """Integer tensor (any shape) to bytes: scale index u8 | coded stream. Shape is the caller's business."""
    values = values.flatten().long()
    # a Laplacian's median |value| is scale·ln 2 (robust to the escaped outliers); try the grid around it
    estimate = max(float(values.abs().float().median()) / math.log(2) if len(values) else 0.0, LAPLACE_SCALES[0])
    centre = min(range(len(LAPLACE_SCALES)), key=lambda i: abs(math.log(LAPLACE_SCALES[i] / estimate)))
    values, best = values.tolist(), None
    for index in range(max(0, centre - 2), min(len(LAPLACE_SCALES), centre + 3)):
        support = _support(LAPLACE_SCALES[index])
        data = bytes([index]) + encode_symbols(values, laplace_pmf(LAPLACE_SCALES[index], support), offset=-support)
        if best is None or len(data) < len(best):
            best = data
    return best


def decode_integers(data: bytes, count: int) -> torch.Tensor:
    if not data or data[0] >= len(LAPLACE_SCALES):
        raise BitstreamError("corrupt parameter update: bad Laplace scale index")
    support = _support(LAPLACE_SCALES[data[0]])
    return torch.tensor(decode_symbols(data[1:], count, laplace_pmf(LAPLACE_SCALES[data[0]], support), offset=-support))


def _support(scale: float) -> int:
    return max(2, min(1024, math.ceil(12 * scale)))  # beyond ±12 scales the escape path is cheaper to keep


def frame(side_info: bytes, payload: bytes) -> bytes:
    """varint(len(side_info)) | side_info | payload."""
    return write_varint(len(side_info)) + side_info + payload


def unframe(data: bytes, codec: str) -> tuple[bytes, bytes]:
    """(side_info, payload); a clear error for truncated input."""
    try:
        n, pos = read_varint(data, 0, "side-information length")
    except BitstreamError:
        raise BitstreamError(f"{codec}: truncated or corrupt side-information header") from None
    if pos + n > len(data):
        raise BitstreamError(f"{codec}: truncated stream: side information announces {n} bytes, {len(data) - pos} left")
    return bytes(data[pos : pos + n]), bytes(data[pos + n :])
