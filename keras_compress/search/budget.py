"""Budgets: what the searched model must meet, parsed from ``metric=value`` text.

Metrics and what they measure (always on the converted full-int8 ``.tflite``):

- ``size``: file bytes; ``64KB`` (1000 B), ``64KiB``, ``1.5MB``, ``65536`` or
  relative to the original's int8 file: ``25%``, ``0.25x``, ``1/4``;
- ``gzip``: gzip-9 bytes of the file; relative values are of the original's
  **float32** file gzipped (``gzip=1/12``: twelve times smaller to ship than
  the float model);
- ``macs``: multiply-accumulates per inference (``10M``, ``5e6``, or relative);
- ``latency``: median ms per inference on the target (``0.5ms``, ``300us``, or
  relative to the original int8 model's, ``0.5x``);
- ``accuracy``: a floor on test accuracy: ``0.97`` / ``97%``, or ``-1pt``
  (at most one point below the original int8 model's).

Example:
    >>> from keras_compress.search.budget import Budget
    >>> [str(Budget.parse(t)) for t in ("size=64KB", "gzip=1/12", "latency=0.5x", "accuracy=-1pt")]
    ['size <= 64,000 B', 'gzip <= 1/12 of the float32 gzip', 'latency <= 0.5x the original', 'accuracy >= original - 1 pt']
    >>> Budget.parse("size=25%").limit({"size": 200_000})
    50000.0
    >>> Budget.parse("accuracy=97%").limit({"accuracy": 0.99}), Budget.parse("accuracy=-1pt").limit({"accuracy": 0.99})
    (0.97, 0.98)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

from keras_compress.errors import ConfigError

__all__ = ["Budget", "METRICS", "parse_budgets"]

#: Budget metrics: the cost ones (at most) and ``accuracy`` (at least).
METRICS = ("size", "gzip", "macs", "latency", "accuracy")
_UNITS = {
    "size": {"": 1, "b": 1, "kb": 1e3, "kib": 1024, "mb": 1e6, "mib": 1024**2},
    "gzip": {"": 1, "b": 1, "kb": 1e3, "kib": 1024, "mb": 1e6, "mib": 1024**2},
    "macs": {"": 1, "k": 1e3, "m": 1e6, "g": 1e9},
    "latency": {"ms": 1.0, "us": 1e-3, "s": 1e3},
}
_NUMBER = r"[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?"


def _fraction(text: str) -> float | None:
    """``25%``, ``0.25x``, ``x0.25`` or ``1/4`` as a fraction; ``None`` if the text is none of these."""
    t = text.strip().lower()
    if m := re.fullmatch(rf"({_NUMBER})%", t):
        return float(m[1]) / 100
    if m := re.fullmatch(rf"({_NUMBER})x|x({_NUMBER})", t):
        return float(m[1] or m[2])
    if m := re.fullmatch(rf"({_NUMBER})/({_NUMBER})", t):
        return float(m[1]) / float(m[2]) if float(m[2]) else math.inf
    return None


@dataclass(frozen=True)
class Budget:
    """One budget: ``metric`` and either an absolute ``value`` or a ``fraction`` of the original (``points`` for accuracy)."""

    metric: str
    value: float | None = None
    fraction: float | None = None
    points: float | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """``"size=64KB"`` etc. (see the module docstring).

        Raises:
            ConfigError: naming the budget, what was expected and what was found.
        """
        metric, sep, raw = str(text).partition("=")
        metric, raw = metric.strip().lower(), raw.strip().lower()
        if not sep or metric not in METRICS:
            raise ConfigError(f"budget {text!r}: expected METRIC=VALUE with METRIC one of {', '.join(METRICS)}")
        if metric == "accuracy":
            return cls._accuracy(text, raw)
        frac = _fraction(raw)
        if frac is not None:
            if not 0 < frac < math.inf:
                raise ConfigError(f"budget {text!r}: a fraction of the original must be > 0; got {raw!r}")
            return cls(metric, fraction=frac, text=text)
        m = re.fullmatch(rf"({_NUMBER})\s*([a-z]*)", raw)
        units = _UNITS[metric]
        if not m or m[2] not in units:
            raise ConfigError(f"budget {text!r}: expected a number with a unit ({', '.join(u or 'none' for u in units)}) "
                              f"or a fraction of the original (25%, 0.25x, 1/4); got {raw!r}")
        value = float(m[1]) * units[m[2]]
        if not 0 < value < math.inf:
            raise ConfigError(f"budget {text!r}: must be > 0; got {raw!r}")
        return cls(metric, value=value, text=text)

    @classmethod
    def _accuracy(cls, text: str, raw: str) -> "Budget":
        if m := re.fullmatch(rf"-({_NUMBER})\s*(pt|pts|points?)", raw):
            return cls("accuracy", points=float(m[1]), text=text)
        frac = _fraction(raw) if raw.endswith("%") else None
        value = frac if frac is not None else (float(raw) if re.fullmatch(_NUMBER, raw) else None)
        if value is None or not 0 < value <= 1:
            raise ConfigError(f"budget {text!r}: expected an accuracy floor in (0, 1] (0.97 or 97%) or a drop "
                              f"from the original (-1pt); got {raw!r}")
        return cls("accuracy", value=value, text=text)

    @property
    def is_floor(self) -> bool:
        """True for ``accuracy`` (at least), False for the costs (at most)."""
        return self.metric == "accuracy"

    def limit(self, original: Mapping[str, float]) -> float:
        """The absolute limit, given the original's measured values (``{"size", "gzip_float32", "latency", ...}``)."""
        if self.value is not None:
            return self.value
        if self.points is not None:
            return original["accuracy"] - self.points / 100
        reference = original["gzip_float32"] if self.metric == "gzip" else original[self.metric]
        return self.fraction * reference

    def met(self, measured: float, limit: float) -> bool:
        """Whether ``measured`` meets ``limit``."""
        return measured >= limit if self.is_floor else measured <= limit

    def __str__(self) -> str:
        if self.metric == "accuracy":
            return f"accuracy >= original - {self.points:g} pt" if self.points is not None else f"accuracy >= {self.value:.2%}"
        if self.fraction is not None:
            if self.metric == "gzip":
                return f"gzip <= 1/{1 / self.fraction:g} of the float32 gzip"
            return f"{self.metric} <= {self.fraction:g}x the original"
        unit = {"size": " B", "gzip": " B", "macs": " MACs", "latency": " ms"}[self.metric]
        return f"{self.metric} <= {self.value:,.0f}{unit}" if unit != " ms" else f"latency <= {self.value:g} ms"


def parse_budgets(texts) -> list[Budget]:
    """Budgets from ``["size=64KB", ...]`` (or one string); at least one cost budget, each metric once.

    Raises:
        ConfigError: no budget, a repeated metric, or only an accuracy floor.
    """
    budgets = [b if isinstance(b, Budget) else Budget.parse(b) for b in ([texts] if isinstance(texts, str) else texts)]
    metrics = [b.metric for b in budgets]
    for m in set(metrics):
        if metrics.count(m) > 1:
            raise ConfigError(f"budget {m!r} given {metrics.count(m)} times; give each metric once")
    if not any(not b.is_floor for b in budgets):
        raise ConfigError("search needs at least one of the size, gzip, macs or latency budgets "
                          "(an accuracy floor alone asks for no compression)")
    return budgets
