"""Learned codec networks (built on CompressAI) and their real bitstreams."""

from codec_networks.bitstream import BitstreamError
from codec_networks.learned_codec import LearnedCodec

__all__ = ["BitstreamError", "LearnedCodec"]
