"""Checking a composed config before anything is built, so a wrong value fails in one line that names
its key instead of deep inside a library.

For every node with a `_target_`, each given key must be a parameter of the target (unless it takes
**kwargs), and each value must fit the parameter's annotation when that is a plain type (int, float,
bool, str, None, Literal and unions of them). Ranges are checked by the classes themselves; networks
that vcm-eval must rebuild later are checked against codec_networks/registry.py.
"""

from __future__ import annotations

import contextlib
import inspect
import types
import typing
from typing import Any, Literal, Union

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from codec_networks.registry import CODECS, check_arguments
from vcmlab.errors import ConfigError

_PLAIN = (int, float, bool, str, type(None))
OWN_PACKAGES = {
    "vcmlab",
    "lightning_modules",
    "datamodules",
    "codec_networks",
    "task_networks",
    "vcm_metrics",
    "conventional_codecs",
}


def check_config(cfg: DictConfig, skip: tuple[str, ...] = ("hydra",)) -> None:
    """Raise ConfigError for the first value that does not fit its target's signature."""
    for key in cfg:
        if key not in skip:
            _walk(cfg[key] if not OmegaConf.is_missing(cfg, key) else None, str(key))
    if cfg.get("model"):
        model = OmegaConf.to_container(cfg.model, resolve=True)
        check_arguments(model, CODECS, "model", ConfigError)


def _walk(node: Any, path: str) -> None:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            _check_node(node, path)
        for key in node:
            if not OmegaConf.is_missing(node, key):
                _walk(node[key], f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]")


def _check_node(node: DictConfig, path: str) -> None:
    try:
        parameters, hints, takes_kwargs = _parameters(get_object(str(node._target_)))
    except Exception:
        return  # an unknown target: Hydra's own error names it when it is built
    for key in node:
        key = str(key)
        if key.startswith("_"):
            continue
        if key not in parameters:
            if takes_kwargs:
                continue
            raise ConfigError(
                f"{path}.{key}: {node._target_} takes no argument {key!r} (it takes {sorted(parameters)})"
            )
        if OmegaConf.is_missing(node, key) or key not in hints:
            continue
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            continue
        if not _fits(value, hints[key]):
            # an interpolation: name the key the value came from
            origin = (
                f" (from {OmegaConf.to_container(node, resolve=False)[key]})"
                if OmegaConf.is_interpolation(node, key)
                else ""
            )
            raise ConfigError(
                f"{path}.{key}={value!r}{origin}: expected {_describe(hints[key])}, got {type(value).__name__}"
            )


def _parameters(target: Any) -> tuple[set[str], dict[str, Any], bool]:
    """(parameter names, their type hints, whether unknown keywords are accepted). The project's own
    classes pass **kwargs on to their base (e.g. a datamodule's loader settings), so they get their
    bases' parameters too, up to the first __init__ without **kwargs; elsewhere **kwargs may go
    anywhere (DDPStrategy hands them to DistributedDataParallel) and accepts every key."""
    functions = [target]
    if inspect.isclass(target):
        inits = [c.__dict__["__init__"] for c in target.__mro__ if c is not object and "__init__" in c.__dict__]
        functions = inits if target.__module__.split(".")[0] in OWN_PACKAGES else inits[:1]
    names, hints = set(), {}
    for function in functions:
        parameters = inspect.signature(function).parameters
        names |= {n for n, p in parameters.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        with contextlib.suppress(Exception):  # annotations that do not resolve at run time: check none of them
            hints = typing.get_type_hints(function) | hints
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return names, hints, False
    return names, hints, True


def _checkable(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return True
    if origin in (Union, types.UnionType):
        return all(_checkable(a) for a in typing.get_args(hint))
    return hint in _PLAIN


def _fits(value: Any, hint: Any) -> bool:
    if not _checkable(hint):
        return True  # callables, modules, lists ...: left to the target
    origin = typing.get_origin(hint)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))
