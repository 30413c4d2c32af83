"""Per-layer settings: an ordered map of layer-name regex -> value, as AI Edge Quantizer's recipes.

A stage field that takes per-layer settings (pruning's ``target_sparsity``,
``prune_filters``' ``fraction``, QAT's ``quantize``) accepts either one value
for every candidate layer or a mapping ``{regex: value}``. Matching follows
AEQ's recipe manager: ``re.search`` on the layer name (anchor with ``^...$``
for one layer), and when several patterns match, the *last* one wins. A
``null`` value leaves the layer alone. A layer no pattern matches is left
alone too. This is how the budget search writes its per-layer plans, as data.

Example:
    >>> from keras_compress.pipeline.layermap import LayerMap
    >>> plan = LayerMap.of({"conv": 0.5, "^conv3$": 0.8, "^logits$": None})
    >>> plan.resolve(["conv1", "conv3", "fc", "logits"])
    {'conv1': 0.5, 'conv3': 0.8}
    >>> LayerMap.of(0.5).resolve(["conv1", "fc"]), LayerMap.of(0.5).to_data()
    ({'conv1': 0.5, 'fc': 0.5}, 0.5)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from keras_compress.errors import ConfigError

__all__ = ["LayerMap", "ALL"]

#: The pattern a single value stands for.
ALL = ".*"


@dataclass(frozen=True)
class LayerMap:
    """Ordered ``(regex, value)`` rules; the last rule whose regex ``re.search``-es a layer name wins."""

    rules: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, value: Any) -> "LayerMap":
        """A map from one value (every layer), a ``{regex: value}`` mapping, or a LayerMap.

        Raises:
            ConfigError: a pattern is not a valid regular expression.
        """
        if isinstance(value, LayerMap):
            return value
        items = list(value.items()) if isinstance(value, Mapping) else [(ALL, value)]
        for pattern, _ in items:
            if not isinstance(pattern, str):
                raise ConfigError(f"layer pattern {pattern!r}: expected a string (a regular expression)")
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"layer pattern {pattern!r}: not a valid regular expression ({e})") from None
        return cls(tuple(items))

    def value_for(self, name: str, default: Any = None) -> Any:
        """The value of the last rule matching ``name``, else ``default``."""
        found = default
        for pattern, value in self.rules:
            if re.search(pattern, name):
                found = value
        return found

    def resolve(self, names: Iterable[str]) -> dict[str, Any]:
        """``{name: value}`` for the names some rule matches with a non-null value, in ``names`` order."""
        out = {}
        for name in names:
            value = self.value_for(name)
            if value is not None:
                out[name] = value
        return out

    def unmatched(self, names: Iterable[str]) -> list[str]:
        """Patterns (other than :data:`ALL`) that match none of ``names``: usually a typo in a plan."""
        names = list(names)
        return [p for p, _ in self.rules if p != ALL and not any(re.search(p, n) for n in names)]

    def select(self, names: Iterable[str], where: str, what: str) -> dict[str, Any]:
        """:meth:`resolve`, refusing patterns that match none of ``names``.

        Args:
            names: the candidate layers (e.g. the prunable layers of a model).
            where: the field, for the message (``variants.student.stages[1].prune.target_sparsity``).
            what: the candidates, for the message (``prunable layer of 'student'``).

        Raises:
            ConfigError: a pattern matches no candidate (the message lists them).
        """
        names = list(names)
        missing = self.unmatched(names)
        if missing:
            raise ConfigError(
                f"{where}: pattern {missing[0]!r} matches no {what}; candidates: {', '.join(names) or 'none'}"
            )
        return self.resolve(names)

    @property
    def uniform(self) -> Any:
        """The value when the map is one value for every layer, else ``None``."""
        return self.rules[0][1] if len(self.rules) == 1 and self.rules[0][0] == ALL else None

    def to_data(self) -> Any:
        """What :meth:`of` reads back: the single value, or the ``{regex: value}`` mapping."""
        if len(self.rules) == 1 and self.rules[0][0] == ALL:
            return self.rules[0][1]
        return dict(self.rules)

    def __str__(self) -> str:
        data = self.to_data()
        return str(data) if not isinstance(data, dict) else ", ".join(f"{p}: {v}" for p, v in self.rules)
