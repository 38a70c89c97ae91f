"""The networks a checkpoint may ask to be rebuilt, and the arguments each takes.

A vcm-train checkpoint stores the config its networks were built from. Instantiating that config with
Hydra would call whatever `_target_` the file names, so a crafted checkpoint could run any importable
callable. Instead the stored config is only looked up here: its `_target_` must be a registered class
and every other key one of that class's registered arguments, of the registered type. Nothing else
(no nested configs, no `_partial_`, no interpolation) is accepted. CompressAI keeps a registry of its
models for the same reason (`compressai.models.models`).

To evaluate a network of your own, register it: `register(CODECS, "pkg.module.Class", Class, N=int)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressai.models import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior

from codec_networks.adapters import Adapter
from codec_networks.adaptive_video import AdaptiveVideoCodec
from codec_networks.lossless_msp import LosslessMSP
from codec_networks.msp import MultiScaleProgressive
from codec_networks.postfilters import FilterBank
from codec_networks.video_codec import PixelFlowSSF
from vcmlab.errors import CheckpointError


@dataclass(frozen=True)
class Entry:
    build: Callable[..., Any]
    arguments: dict[str, type]  # name -> int | float | bool | str; every argument is optional
    positive: frozenset[str] = frozenset()  # arguments that must be > 0


CODECS: dict[str, Entry] = {}
FILTERS: dict[str, Entry] = {}


def register(
    table: dict[str, Entry], target: str, build: Callable[..., Any], positive: tuple[str, ...] = (), **arguments: type
) -> None:
    table[target] = Entry(build, arguments, frozenset(positive))


for _cls in (FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior):
    register(CODECS, f"compressai.models.{_cls.__name__}", _cls, ("N", "M"), N=int, M=int)
register(
    CODECS,
    "codec_networks.msp.MultiScaleProgressive",
    MultiScaleProgressive,
    ("N", "M", "levels", "substeps", "hidden", "kernel_size"),
    N=int,
    M=int,
    levels=int,
    substeps=int,
    hidden=int,
    kernel_size=int,
)
register(
    CODECS,
    "codec_networks.lossless_msp.LosslessMSP",
    LosslessMSP,
    ("channels", "levels", "components", "hidden"),
    channels=int,
    levels=int,
    components=int,
    hidden=int,
    parent_component=bool,
)
register(
    CODECS,
    "codec_networks.video_codec.PixelFlowSSF",
    PixelFlowSSF,
    ("num_levels",),
    num_levels=int,
    sigma0=float,
    scale_field_shift=float,
)
register(
    CODECS,
    "codec_networks.adaptive_video.AdaptiveVideoCodec",
    AdaptiveVideoCodec,
    ("N", "M", "intra_N", "intra_M", "adaptation_base"),
    N=int,
    M=int,
    intra_N=int,
    intra_M=int,
    attention=bool,
    resolution_adaptive=bool,
    adaptation_base=int,
    multiplicative=bool,
)
register(
    FILTERS,
    "codec_networks.postfilters.FilterBank",
    FilterBank,
    ("filters", "channels", "qp_max"),
    filters=int,
    channels=int,
    blocks=int,
    qp_max=float,
)
register(
    FILTERS,
    "codec_networks.adapters.Adapter",
    Adapter,
    ("channels", "blocks", "qp_max"),
    channels=int,
    blocks=int,
    conditioned=bool,
    qp_max=float,
)


def check_arguments(
    config: Any, table: dict[str, Entry], what: str, error: type[Exception] = CheckpointError
) -> tuple[Entry, dict[str, Any]]:
    """(entry, keyword arguments) for a stored config, or `error` naming the offending key."""
    if not isinstance(config, dict):
        raise error(f"{what} must be a mapping with a _target_, got {type(config).__name__}")
    target = config.get("_target_")
    if not isinstance(target, str) or target not in table:
        raise error(
            f"{what}._target_={target!r} is not a registered network (registered: {sorted(table)}); only these are "
            "rebuilt from checkpoints. Register your own class in codec_networks/registry.py"
        )
    entry, kwargs = table[target], {}
    for key, value in config.items():
        if key == "_target_":
            continue
        expected = entry.arguments.get(key)
        if expected is None:
            raise error(f"{what}.{key} is not an argument of {target} (allowed: {sorted(entry.arguments)})")
        ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            raise error(f"{what}.{key}={value!r}: expected {expected.__name__}, got {type(value).__name__}")
        if key in entry.positive and value <= 0:
            raise error(f"{what}.{key}={value!r}: must be positive")
        kwargs[key] = value
    return entry, kwargs


def build_network(config: Any, table: dict[str, Entry], what: str, error: type[Exception] = CheckpointError):
    entry, kwargs = check_arguments(config, table, what, error)
    return entry.build(**kwargs)
