"""Dotted-key overrides of recipe data: ``{"variants.student.stages.1.train.epochs": 1}``.

A path part that is a number indexes a list (a variant's ``stages``);
missing mappings are created.

Example:
    >>> from keras_compress.recipes.overrides import apply_overrides
    >>> apply_overrides({"a": {"b": 1}}, {"a.c": 2, "d": 3})
    {'a': {'b': 1, 'c': 2}, 'd': 3}
    >>> apply_overrides({"v": {"stages": [{"train": {"epochs": 9}}]}}, {"v.stages.0.train.epochs": 1})
    {'v': {'stages': [{'train': {'epochs': 1}}]}}
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from keras_compress.errors import ConfigError

__all__ = ["apply_overrides"]


def _child(node: Any, part: str, key: str, where: str, create: bool) -> Any:
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise ConfigError(f"override {key!r}: {where} is a list of {len(node)}; expected an index, got {part!r}")
        return node[int(part)]
    if not isinstance(node, dict):
        raise ConfigError(f"override {key!r}: {where} is not a section")
    if node.get(part) is None and create:
        node[part] = {}
    return node.get(part)


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """A deep copy of ``data`` with each dotted key of ``overrides`` set to its value."""
    out = copy.deepcopy(dict(data))
    for key, value in overrides.items():
        parts = str(key).split(".")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, key, ".".join(parts[:i]) or "the recipe", create=True)
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"override {key!r}: {'.'.join(parts[:-1])} is a list of {len(node)}; got index {last!r}")
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"override {key!r}: {'.'.join(parts[:-1])} is not a section")
    return out
