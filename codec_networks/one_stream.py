"""Every entropy model of a CompressAI model writing into one rANS stream.

CompressAI's compress() gives each entropy model its own rANS string, and each string ends with the
coder's 8-byte state flush (plus a length field in any container). A hyperprior thus pays ~10 bytes
per image for its second stream: ~0.6% of the rate at 0.1 bpp on a 451x300 photo. Sharing one
BufferedRansEncoder between the entropy models removes it without touching the models' own
compress()/decompress(): each model still quantises, picks its CDFs and calls its coder, but the
coder is shared. The buffered encoder codes its symbols in reverse at flush, so the decoder reads
them in the order they were written: this is correct for any model whose decompress() calls its
entropy models in the order compress() did (z before y, as causality requires of a hyperprior);
`call_sizes` lets a caller check that order once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyModel


class _SharedEncoder:
    """Stands in for an entropy model's coder: symbols go to the shared buffer, strings stay empty.

    A hyperprior's compress() decodes z's string right away to get ẑ for the hyper-synthesis; rANS is
    lossless, so the symbols just written are what a decoder would read: they are handed back."""

    def __init__(self, buffer: BufferedRansEncoder, call_sizes: list[int]):
        self.buffer, self.call_sizes = buffer, call_sizes
        self._written: deque[list[int]] = deque()

    def encode_with_indexes(self, symbols, indexes, cdfs, cdf_lengths, offsets) -> bytes:
        self.buffer.encode_with_indexes(symbols, indexes, cdfs, cdf_lengths, offsets)
        self.call_sizes.append(len(symbols))
        self._written.append(list(symbols))
        return b""

    def decode_with_indexes(self, _string, indexes, *_tables) -> list[int]:
        if not self._written or len(self._written[0]) != len(indexes):
            raise RuntimeError(
                "compress() decodes symbols it has not encoded first: this model cannot share one rANS stream"
            )
        return self._written.popleft()


class _SharedDecoder:
    def __init__(self, decoder: RansDecoder, call_sizes: list[int]):
        self.decoder, self.call_sizes = decoder, call_sizes

    def decode_with_indexes(self, _string, indexes, cdfs, cdf_lengths, offsets) -> list[int]:
        self.call_sizes.append(len(indexes))
        return self.decoder.decode_stream(indexes, cdfs, cdf_lengths, offsets)


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
        self._buffer = BufferedRansEncoder()

    @contextmanager
    def writing(self, model: torch.nn.Module) -> Iterator[None]:
        with _coder_swapped(model, _SharedEncoder(self._buffer, self.call_sizes)):
            yield

    def flush(self) -> bytes:
        return self._buffer.flush()

    @contextmanager
    def reading(self, model: torch.nn.Module, data: bytes) -> Iterator[None]:
        decoder = RansDecoder()
        decoder.set_stream(data)
        with _coder_swapped(model, _SharedDecoder(decoder, self.call_sizes)):
            yield
