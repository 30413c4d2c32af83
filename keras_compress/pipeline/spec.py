"""Stage specs: frozen dataclasses whose fields validate themselves, read from YAML / JSON data.

A spec field is declared with :func:`setting`, giving a check (one of the
factories below) and a default. :func:`build_spec` builds a spec from a plain
mapping: unknown keys, wrong types, out-of-range, NaN and infinite numbers all
raise one :class:`~keras_compress.errors.ConfigError` that names the field
(dotted, as in the recipe), the allowed values and the value found.
:func:`spec_data` turns a spec back into plain data.

Example:
    >>> from dataclasses import dataclass
    >>> from keras_compress.pipeline.spec import setting, number, integer, build_spec, spec_data
    >>> @dataclass(frozen=True)
    ... class FitSpec:
    ...     epochs: int = setting(integer(1, 10_000), 3)
    ...     learning_rate: float = setting(number(0.0, 1.0, lo_open=True), 1e-3)
    >>> build_spec(FitSpec, {"epochs": 5}, "train")
    FitSpec(epochs=5, learning_rate=0.001)
    >>> build_spec(FitSpec, {"learning_rate": float("nan")}, "train")
    Traceback (most recent call last):
    ...
    keras_compress.errors.ConfigError: train.learning_rate: expected a finite number in (0.0, 1.0]; got nan
    >>> spec_data(build_spec(FitSpec, {}, "train"))
    {'epochs': 3, 'learning_rate': 0.001}
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Mapping

from keras_compress.errors import ConfigError
from keras_compress.pipeline.layermap import LayerMap

__all__ = [
    "setting",
    "build_spec",
    "spec_data",
    "boolean",
    "integer",
    "number",
    "choice",
    "text",
    "optional",
    "file_name",
    "per_layer",
    "mapping",
    "choices_text",
]

Check = Callable[[str, Any], Any]

#: A name that is safe as a file name: no separator, no "..", no leading dot or dash.
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")


def choices_text(values) -> str:
    """``'a', 'b', 'c'``: allowed values as messages show them."""
    return ", ".join(repr(v) for v in values)


def setting(check: Check, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field validated by ``check`` when read through :func:`build_spec`."""
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(metadata={"check": check}, **kwargs)


def _range_text(lo, hi, lo_open=False, hi_open=False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi}"
    return ""


def _outside(v, lo, hi, lo_open, hi_open) -> bool:
    return (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi)))


def boolean(where: str, v: Any) -> bool:
    """``true`` or ``false`` only (not 0/1, not "yes")."""
    if not isinstance(v, bool):
        raise ConfigError(f"{where}: expected true or false; got {v!r}")
    return v


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    """An integer (not a bool, not a float) in ``[lo, hi]``."""

    def check(where: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or _outside(v, lo, hi, False, False):
            raise ConfigError(f"{where}: expected an integer{_range_text(lo, hi)}; got {v!r}")
        return v

    return check


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    """A finite number (NaN and infinity are refused) in the given range."""

    def check(where: str, v: Any) -> float:
        bad = isinstance(v, bool) or not isinstance(v, (int, float))
        if bad or not math.isfinite(v) or _outside(float(v), lo, hi, lo_open, hi_open):
            raise ConfigError(f"{where}: expected a finite number{_range_text(lo, hi, lo_open, hi_open)}; got {v!r}")
        return float(v)

    return check


def choice(values, allow_none: bool = False) -> Check:
    """One of ``values`` (or ``null`` with ``allow_none``)."""

    def check(where: str, v: Any) -> Any:
        if v is None and allow_none:
            return None
        if not isinstance(v, (str, int, float)) or isinstance(v, bool) or v not in values:
            extra = " or null" if allow_none else ""
            raise ConfigError(f"{where}: expected one of {choices_text(values)}{extra}; got {v!r}")
        return v

    return check


def text(where: str, v: Any) -> str:
    """A non-empty string."""
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: expected a non-empty string; got {v!r}")
    return v


def file_name(where: str, v: Any) -> str:
    """A name used as a file name: letters, digits, ``_ . + -``; no separator, no ``..``."""
    if not isinstance(v, str) or not _FILE_NAME.match(v) or ".." in v:
        raise ConfigError(
            f"{where}: expected a file name (letters, digits, '_', '.', '+', '-'; no '/', no '..', "
            f"at most 100 characters); got {v!r}"
        )
    return v


def optional(check: Check) -> Check:
    """``null`` or what ``check`` accepts."""
    return lambda where, v: None if v is None else check(where, v)


def mapping(where: str, v: Any) -> dict:
    """A mapping (of loader options, ...), copied."""
    if not isinstance(v, Mapping):
        raise ConfigError(f"{where}: expected a mapping; got {v!r}")
    return dict(v)


def per_layer(check: Check) -> Check:
    """One value for every layer, or ``{regex: value or null}`` (see :class:`LayerMap`)."""

    def run(where: str, v: Any) -> LayerMap:
        if isinstance(v, LayerMap):
            v = v.to_data()
        if isinstance(v, Mapping):
            if not v:
                raise ConfigError(f"{where}: expected a value or a non-empty {{layer regex: value}} mapping; got {{}}")
            data = {k: None if x is None else check(f"{where}[{k!r}]", x) for k, x in v.items()}
        else:
            data = check(where, v)
        try:
            return LayerMap.of(data)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    return run


def build_spec(cls: type, data: Any, where: str) -> Any:
    """Validate ``data`` (a mapping or ``None``) and build the spec dataclass ``cls``.

    A spec with a ``check(where)`` method (fields that must agree with each
    other) has it called on the new spec.

    Raises:
        ConfigError: the first bad field, by its dotted name ``where.field``.
    """
    if data is None:
        data = {}
    names = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with fields {choices_text(names)}; got {data!r}")
    for key in data:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown field; allowed fields of {where}: {choices_text(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = f.metadata["check"](f"{where}.{f.name}", data[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}.{f.name}: required")
    spec = cls(**kwargs)
    if hasattr(spec, "check"):
        spec.check(where)
    return spec


def _plain(v: Any) -> Any:
    if isinstance(v, LayerMap):
        return v.to_data()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return spec_data(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def spec_data(spec: Any) -> dict:
    """A spec as plain data (YAML / JSON ready) that :func:`build_spec` reads back to an equal spec."""
    return {f.name: _plain(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
