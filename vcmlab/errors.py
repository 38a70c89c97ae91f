"""The project's errors for bad input: each says what is wrong with which file, stream or config value.

Every console script turns an `InputError` into one line on stderr and exit status 2 (`Preempted`:
status 143), with no stack trace: the message is meant for the user, the trace would only bury it.
Everything else is a bug and keeps its trace.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a config value, a file, a checkpoint or a stream that cannot be used as given."""


class ConfigError(InputError):
    """A config value of the wrong type or range, or a key the target does not take."""


class CheckpointError(InputError):
    """A checkpoint that cannot be read, does not fit, or asks for something that is not allowed."""


class CodecError(InputError):
    """A codec that cannot run here or refuses its input (a missing encoder or binary, a picture too small
    for the encoder, an external encoder that failed); `BitstreamError` for undecodable streams."""


class BitstreamError(CodecError):
    """A bitstream that cannot be decoded: truncated, corrupted, or made by another model or codec; the
    same error for learned streams, conventional streams and side information."""


class Preempted(Exception):
    """Training stopped by SIGTERM (a cluster's preemption) after saving a checkpoint; exit status 143."""

    exit_status = 128 + 15
