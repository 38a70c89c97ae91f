"""Conventional image codecs (anchors) behind one interface: encode(image) -> bytes, decode(bytes) -> image."""

from conventional_codecs.base import CodecError, ImageCodec  # CodecError lives in vcmlab.errors; kept importable here
from conventional_codecs.pillow_codecs import PillowCodec
from conventional_codecs.pyav_codecs import PyAVIntraCodec
from conventional_codecs.pyav_video import PyAVVideoCodec
from conventional_codecs.scaled import ScaledCodec
from conventional_codecs.vvc_binaries import VVCBinaryCodec
from conventional_codecs.vvc_video import VVCVideoCodec

__all__ = [
    "CodecError",
    "ImageCodec",
    "PillowCodec",
    "PyAVIntraCodec",
    "PyAVVideoCodec",
    "ScaledCodec",
    "VVCBinaryCodec",
    "VVCVideoCodec",
]
