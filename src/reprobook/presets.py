"""Presets: how a chapter turns ``preset`` + ``overrides`` into a typed config.

A chapter declares a frozen dataclass of its parameters (defaults = the
``cpu`` preset) and a dict of presets, each a dict of field overrides. Every
problem (unknown preset, unknown field, a value of the wrong type) is a
``ConfigError`` naming the valid choices, raised before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A preset or parameter the chapter does not know, or a value of the wrong type."""


def require_at_least_one(**values: int) -> None:
    """A ConfigError naming every parameter below 1 (counts, sizes, steps)."""
    bad = [k for k, v in values.items() if v < 1]
    if bad:
        raise ConfigError(f"these parameters must be >= 1: {', '.join(bad)}")


def check_small_transformer(vocab_size: int, d_model: int, n_heads: int) -> None:
    """The shape checks of a small Transformer trained here on a byte-level BPE."""
    if vocab_size <= 256:
        raise ConfigError(f"vocab_size must be > 256 (byte-level BPE), got {vocab_size}")
    if d_model % n_heads:
        raise ConfigError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (tuple,):
        args = typing.get_args(tp)
        inner = _describe(args[0]) if args else "value"
        return f"tuple of {inner}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def coerce(name: str, value: Any, tp) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, bool, str,
    tuple[...], Optional[...]) and return it in canonical form."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return coerce(name, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"parameter {name!r} must be {_describe(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"parameter {name!r} must be None, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"parameter {name!r} must be a {_describe(tp)}, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(coerce(f"{name}[{i}]", v, inner) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"parameter {name!r} must be {_describe(tp)}, got {value!r} ({type(value).__name__})")


def parse_cli_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def field_types(config_cls) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def resolve(config_cls, presets: dict[str, dict], preset: str, overrides: dict | None = None,
            also_valid: tuple[str, ...] = ()):
    """The config for ``preset`` with ``overrides`` applied, type-checked.

    ``also_valid`` names parameters handled elsewhere (listed in the error for
    an unknown parameter, so the message names every valid choice).
    """
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(presets)}")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"overrides must be a dict of parameter -> value, got {overrides!r}")
    types_ = field_types(config_cls)
    values = {**presets[preset], **overrides}
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"valid parameters: {', '.join([*types_, *also_valid])}"
        )
    checked = {k: coerce(k, v, types_[k]) for k, v in values.items()}
    config = config_cls(**checked)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def describe_fields(config_cls) -> list[tuple[str, str, Any]]:
    """(name, type, cpu default) for each parameter, for ``reprobook list``."""
    types_ = field_types(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append((f.name, _describe(types_[f.name]), default))
    return out
