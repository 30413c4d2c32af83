"""A per-layer compression plan: which method at which setting for each layer, as data.

A :class:`Plan` maps layer names to settings of the four methods the search
allocates:

- ``filters``: fraction of the layer's output channels removed
  (:func:`keras_compress.pruning.prune_filters`; the layers after it shrink to match);
- ``lowrank``: the layer factorized into two, at most this fraction of its MACs
  (:func:`keras_compress.decomposition.decompose` with ``ratio``); ``fc``
  becomes ``fc_a`` and ``fc_b``, and the layer's other settings apply to both;
- ``sparsity``: fraction of the kernel's weights set to zero by magnitude
  (the ``prune`` stage while fine-tuning);
- ``clusters``: number of distinct kernel values (the ``cluster`` stage);
- ``bits``: ``4``: the layer's weights at 4 bits in the file (AI Edge Quantizer,
  ``to_tflite(quantization="int4_int8")``; the other layers stay int8). CPU
  runtimes only (not the Edge TPU, not tflite-runtime 2.14), and opt-in.

Structural methods (``filters``, ``lowrank``) change the architecture and are
applied first, in that order; ``sparsity`` and ``clusters`` change weight values
only. The JSON form (:meth:`Plan.to_json`) is what ``keras-compress search``
writes to ``plan.json``; :func:`keras_compress.search.apply_plan` re-applies it.

Example:
    >>> from keras_compress.search.plan import Plan
    >>> plan = Plan({"conv3": {"filters": 0.5}, "fc": {"lowrank": 0.25, "sparsity": 0.9}})
    >>> plan.structural().layers, plan.methods()
    ({'conv3': {'filters': 0.5}, 'fc': {'lowrank': 0.25}}, ('filters', 'lowrank', 'sparsity'))
    >>> Plan.from_json(plan.to_json()) == plan
    True
    >>> plan.with_setting("conv2", "filters", 0.25).layers["conv2"]
    {'filters': 0.25}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from keras_compress.errors import ConfigError

__all__ = ["Plan", "METHODS", "STRUCTURAL", "PLAN_FORMAT", "check_setting", "factor_pattern"]

#: Every method a plan can hold, in the order they are applied.
METHODS = ("filters", "lowrank", "sparsity", "clusters", "bits")
#: The methods that change the architecture (applied before the others, without training).
STRUCTURAL = ("filters", "lowrank")
#: The ``format`` field of a plan's JSON form.
PLAN_FORMAT = "keras-compress-plan/1"


def check_setting(where: str, method: str, value: Any) -> Any:
    """``value`` if it is a valid setting of ``method``, else a :class:`ConfigError` naming ``where``."""
    if method not in METHODS:
        raise ConfigError(f"{where}: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "bits":
        if value != 4 or isinstance(value, bool):
            raise ConfigError(f"{where}.bits: expected 4 (the layers not listed stay at 8 bits); got {value!r}")
        return 4
    if method == "clusters":
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"{where}.clusters: expected an integer >= 2; got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value < 1:
        raise ConfigError(f"{where}.{method}: expected a number in (0, 1); got {value!r}")
    return float(value)


def factor_pattern(name: str) -> str:
    """The regex matching a layer and, once factorized by ``lowrank``, its two factors."""
    return f"^{re.escape(name)}(_a|_b)?$"


@dataclass(frozen=True)
class Plan:
    """``{layer name: {method: setting}}``; layers and methods not listed are left alone."""

    layers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        clean = {}
        for name, settings in dict(self.layers).items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"plan: layer names must be non-empty strings; got {name!r}")
            if not isinstance(settings, Mapping):
                raise ConfigError(f"plan[{name!r}]: expected a mapping method -> setting; got {settings!r}")
            kept = {m: check_setting(f"plan[{name!r}]", m, v) for m, v in settings.items() if v is not None}
            if kept:
                clean[name] = {m: kept[m] for m in METHODS if m in kept}
        object.__setattr__(self, "layers", clean)

    def __eq__(self, other):
        return isinstance(other, Plan) and dict(self.layers) == dict(other.layers)

    def __hash__(self):
        return hash(self.key())

    def key(self) -> str:
        """A canonical string of the plan (cache key)."""
        return json.dumps(self.layers, sort_keys=True)

    def get(self, name: str, method: str) -> Any:
        """The setting of ``method`` for layer ``name``, or ``None``."""
        return self.layers.get(name, {}).get(method)

    def with_setting(self, name: str, method: str, value: Any) -> "Plan":
        """A copy with ``name``'s ``method`` set to ``value`` (``None`` removes it)."""
        layers = {n: dict(s) for n, s in self.layers.items()}
        layers.setdefault(name, {})[method] = value
        return Plan(layers)

    def only(self, methods) -> "Plan":
        """The part of the plan that uses ``methods``."""
        return Plan({n: {m: v for m, v in s.items() if m in methods} for n, s in self.layers.items()})

    def structural(self) -> "Plan":
        """The ``filters`` and ``lowrank`` part: what changes the architecture."""
        return self.only(STRUCTURAL)

    def by_method(self, method: str) -> dict[str, Any]:
        """``{layer: setting}`` of one method."""
        return {n: s[method] for n, s in self.layers.items() if method in s}

    def methods(self) -> tuple[str, ...]:
        """The methods the plan uses, in application order."""
        used = {m for s in self.layers.values() for m in s}
        return tuple(m for m in METHODS if m in used)

    def to_json(self, **extra: Any) -> str:
        """The plan file's text: ``{"format", "layers", **extra}``."""
        return json.dumps({"format": PLAN_FORMAT, "layers": self.layers, **extra}, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "plan") -> "Plan":
        """Read a plan written by :meth:`to_json` (or a bare ``{layer: {method: setting}}`` mapping)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: not valid JSON ({e})") from None
        if isinstance(data, Mapping) and "format" in data:
            if data["format"] != PLAN_FORMAT:
                raise ConfigError(f"{where}: format {data['format']!r}; expected {PLAN_FORMAT!r}")
            data = data.get("layers", {})
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a JSON object of layer -> settings; got {type(data).__name__}")
        try:
            return cls(data)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    def describe(self) -> str:
        """One line: ``conv3 filters 0.5; fc lowrank 0.25 sparsity 0.9`` (``no compression`` if empty)."""
        parts = [f"{n} " + " ".join(f"{m} {v:g}" for m, v in s.items()) for n, s in self.layers.items()]
        return "; ".join(parts) or "no compression"
