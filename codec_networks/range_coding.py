"""CompressAI's CDF tables coded with constriction's range coder instead of CompressAI's rANS.

The symbols, tables and escape rule are CompressAI's (`EntropyModel.compress` passes them to its coder
as `encode_with_indexes(symbols, indexes, cdfs, cdf_lengths, offsets)`): a value outside its table is
sent as the table's last (escape) symbol followed by its distance in 4-bit bypass digits. Only the
arithmetic coder differs. CompressAI's rANS ends every stream with its 64-bit state, ~5 bytes beyond the
information in it; a range coder terminates in ~2 (measured on 200 random streams: 2.0 bytes on
average, at most 4.1, word rounding included). At the low rates of coding for machines (0.05 bpp is
~1700 bytes on a 640x427 photo) those 3 bytes are 0.2% of the rate.

Within one call the symbols are coded grouped by table (ascending index, in scan order within a group),
then the bypass digits of the escaped ones in scan order: the decoder knows the indexes before it
decodes, so it mirrors the order, and one constriction model per table replaces a per-symbol lookup.
Tables are 16-bit integer CDFs, so the probabilities handed to constriction are exact dyadic floats and
both sides quantise them identically.
"""

from __future__ import annotations

import constriction
import numpy as np

# constriction is a compiled extension without Python submodules: its classes are attributes
Categorical, Uniform = constriction.stream.model.Categorical, constriction.stream.model.Uniform
RangeEncoder, RangeDecoder = constriction.stream.queue.RangeEncoder, constriction.stream.queue.RangeDecoder

PRECISION = 16  # CompressAI's CDF tables sum to 2**16 (entropy_coder_precision)
BYPASS_BITS = 4  # CompressAI's bypass_precision
_DIGIT = Uniform(1 << BYPASS_BITS)
_MAX_DIGIT = (1 << BYPASS_BITS) - 1


def _model(cdf: list[int], length: int) -> Categorical:
    counts = np.diff(np.asarray(cdf[:length], dtype=np.int64))
    if counts.min() <= 0 or counts.sum() != 1 << PRECISION:
        raise ValueError("a CDF table must increase strictly from 0 to 2**16")
    return Categorical(counts / float(1 << PRECISION), perfect=False)


def _arrays(indexes, cdf_lengths, offsets):
    indexes = np.asarray(indexes, dtype=np.int64)
    max_values = np.asarray(cdf_lengths, dtype=np.int64)[indexes] - 2  # the escape symbol
    return indexes, max_values, np.asarray(offsets, dtype=np.int64)[indexes]


def encode(encoder: RangeEncoder, symbols, indexes, cdfs, cdf_lengths, offsets) -> None:
    """Append `symbols` (values, each coded with table `indexes[i]`) to `encoder`."""
    indexes, max_values, offsets = _arrays(indexes, cdf_lengths, offsets)
    values = np.asarray(symbols, dtype=np.int64) - offsets
    raw = np.where(values < 0, -2 * values - 1, np.where(values >= max_values, 2 * (values - max_values), 0))
    escaped = (values < 0) | (values >= max_values)
    values = np.where(escaped, max_values, values)
    for index in np.unique(indexes):
        chosen = indexes == index
        encoder.encode(values[chosen].astype(np.int32), _model(cdfs[index], cdf_lengths[index]))
    for r in raw[escaped].tolist():
        encoder.encode(np.asarray(_bypass_digits(r), dtype=np.int32), _DIGIT)


def decode(decoder: RangeDecoder, indexes, cdfs, cdf_lengths, offsets) -> list[int]:
    """The values `encode` wrote with these `indexes`, in their order."""
    indexes, max_values, offsets = _arrays(indexes, cdf_lengths, offsets)
    values = np.empty(len(indexes), dtype=np.int64)
    for index in np.unique(indexes):
        chosen = indexes == index
        values[chosen] = decoder.decode(_model(cdfs[index], cdf_lengths[index]), int(chosen.sum()))
    for i in np.flatnonzero(values == max_values).tolist():
        raw = _read_bypass(decoder)
        values[i] = -(raw + 1) // 2 if raw & 1 else raw // 2 + max_values[i]
    return (values + offsets).tolist()


def _bypass_digits(raw: int) -> list[int]:
    """CompressAI's bypass layout: the number of 4-bit digits (in digits of 15 with continuation),
    then the digits, least significant first."""
    n = 0
    while raw >> (n * BYPASS_BITS):
        n += 1
    count = [_MAX_DIGIT] * (n // _MAX_DIGIT) + [n % _MAX_DIGIT]
    return count + [(raw >> (j * BYPASS_BITS)) & _MAX_DIGIT for j in range(n)]


def _read_bypass(decoder: RangeDecoder) -> int:
    n, digit = 0, _MAX_DIGIT
    while digit == _MAX_DIGIT:
        digit = int(decoder.decode(_DIGIT))
        n += digit
        if n > 64 // BYPASS_BITS:  # more digits than an int64 has: the stream is not one of ours
            raise ValueError("bypass value too long")
    return sum(int(decoder.decode(_DIGIT)) << (j * BYPASS_BITS) for j in range(n))


def to_bytes(encoder: RangeEncoder) -> bytes:
    """The coder's 32-bit words as bytes (big-endian)."""
    return encoder.get_compressed().astype(">u4").tobytes()


def decoder_for(data: bytes) -> RangeDecoder:
    if len(data) % 4:
        raise ValueError(f"a range-coded stream is whole 32-bit words, got {len(data)} bytes")
    return RangeDecoder(np.frombuffer(data, dtype=">u4").astype(np.uint32))
