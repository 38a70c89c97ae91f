"""Every entropy model of a CompressAI model writing into one range-coded stream.

CompressAI's compress() gives each entropy model its own rANS string, and each string ends with the
coder's state flush (plus a length field in any container). Here every entropy model's coder is
swapped for one shared range coder (`range_coding.py`: CompressAI's tables and escape rule, constriction's
coder) without touching the models' own compress()/decompress(): each model still quantises, picks its
CDFs and calls its coder, but all symbols go to one stream that ends once, in ~2 bytes. The coder is
a queue, so the decoder reads the symbols in the order they were written: this is correct for any
model whose decompress() calls its entropy models in the order compress() did (z before y, as
causality requires of a hyperprior); `call_sizes` lets a caller check that order once. Inside the
stream every GaussianConditional also picks its table by the nearest scale (`gaussian.nearest_scales`),
so a writer and a reader of one stream cannot disagree on that rule either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from compressai.entropy_models import EntropyModel

from codec_networks import range_coding
from codec_networks.gaussian import nearest_scales
from codec_networks.range_coding import RangeEncoder


class _SharedEncoder:
    """Stands in for an entropy model's coder: symbols go to the shared stream, strings stay empty.

    A hyperprior's compress() decodes z's string right away to get ẑ for the hyper-synthesis; the
    coder is lossless, so the symbols just written are what a decoder would read: they are handed back."""

    def __init__(self, encoder: RangeEncoder, call_sizes: list[int]):
        self.encoder, self.call_sizes = encoder, call_sizes
        self._written: deque[list[int]] = deque()

    def encode_with_indexes(self, symbols, indexes, cdfs, cdf_lengths, offsets) -> bytes:
        range_coding.encode(self.encoder, symbols, indexes, cdfs, cdf_lengths, offsets)
        self.call_sizes.append(len(symbols))
        self._written.append(list(symbols))
        return b""

    def decode_with_indexes(self, _string, indexes, *_tables) -> list[int]:
        if not self._written or len(self._written[0]) != len(indexes):
            raise RuntimeError(
                "compress() decodes symbols it has not encoded first: this model cannot share one stream"
            )
        return self._written.popleft()


class _SharedDecoder:
    def __init__(self, data: bytes, call_sizes: list[int]):
        self.decoder, self.call_sizes = range_coding.decoder_for(data), call_sizes

    def decode_with_indexes(self, _string, indexes, cdfs, cdf_lengths, offsets) -> list[int]:
        self.call_sizes.append(len(indexes))
        return range_coding.decode(self.decoder, indexes, cdfs, cdf_lengths, offsets)


def entropy_models(model: torch.nn.Module) -> list[EntropyModel]:
    return [m for m in model.modules() if isinstance(m, EntropyModel)]


@contextmanager
def _coder_swapped(model: torch.nn.Module, coder) -> Iterator[None]:
    models = entropy_models(model)
    saved = [m.entropy_coder for m in models]
    for m in models:
        m.entropy_coder = coder
    try:
        yield
    finally:
        for m, original in zip(models, saved):
            m.entropy_coder = original


class OneStream:
    """`with stream.writing(model): model.compress(x)` then `stream.flush()`; `with
    stream.reading(model, data): model.decompress(empty_strings, shape)`. `call_sizes` records how
    many symbols each entropy-model call coded, in order."""

    def __init__(self) -> None:
        self.call_sizes: list[int] = []
        self._encoder = RangeEncoder()

    @contextmanager
    def writing(self, model: torch.nn.Module) -> Iterator[None]:
        with _coder_swapped(model, _SharedEncoder(self._encoder, self.call_sizes)), nearest_scales(model):
            yield

    def flush(self) -> bytes:
        return range_coding.to_bytes(self._encoder)

    @contextmanager
    def reading(self, model: torch.nn.Module, data: bytes) -> Iterator[None]:
        with _coder_swapped(model, _SharedDecoder(data, self.call_sizes)), nearest_scales(model):
            yield
