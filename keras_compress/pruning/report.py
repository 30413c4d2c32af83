"""`sparsity_report`: a per-layer table of weights, zeros and sparsity; `overall_sparsity`: the one definition.

Sparsity, everywhere in this project (the demo's and the recipes' ``sparsity``
column, the benches), is :func:`overall_sparsity`: the fraction of exact zeros
over the prunable weights of a model (the kernels of Dense, Conv*,
DepthwiseConv, SeparableConv's pointwise kernel, Embedding's embeddings),
looking through pruning wrappers (their effective ``weight * mask``), QAT and
other wrappers, and nested models. Biases, batch norm and other weights do not
count.

Example:
    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="zeros", name="fc"),
    ...                       keras.layers.Dense(4, name="out")])
    >>> overall_sparsity(m)   # 8 zeros in fc's 4x2 kernel, none in out's 2x4
    0.5
"""

from __future__ import annotations

import keras
import numpy as np

from keras_compress.pruning.wrapper import PruneLowMagnitude, prunable_weight_spec

__all__ = ["sparsity_report", "layer_sparsities", "overall_sparsity"]


def _rows(model, prefix=""):
    for layer in getattr(model, "layers", []):
        if isinstance(layer, PruneLowMagnitude):
            for w, m in zip(layer.prunable_weights(), layer.masks):
                values = keras.ops.convert_to_numpy(w) * keras.ops.convert_to_numpy(m)
                yield prefix + layer.name, w.path.split("/")[-1], values, True
        elif hasattr(layer, "layers"):
            yield from _rows(layer, prefix + layer.name + "/")
        elif prunable_weight_spec(layer) is None and isinstance(getattr(layer, "layer", None), keras.layers.Layer):
            # a QAT or other wrapper: its inner layer's weights, under the wrapper's name
            for _, weight, values, pruned in _rows(_Single(layer.layer), ""):
                yield prefix + layer.name, weight, values, pruned
        else:
            spec = prunable_weight_spec(layer)
            if spec is None or not layer.built:
                continue
            names, _ = spec
            weights = layer.get_prunable_weights() if names == ("*",) else [
                getattr(layer, n) for n in names
            ]
            for w in weights:
                yield prefix + layer.name, w.path.split("/")[-1], keras.ops.convert_to_numpy(w), False


class _Single:
    """A one-layer container, so a wrapped layer goes through the same rows as a model's."""

    def __init__(self, layer):
        self.layers = [layer]


def sparsity_report(model, print_fn=print) -> list[dict]:
    """Prints and returns the sparsity of every prunable weight of ``model``.

    Works on models under pruning (the effective weights ``weight * mask`` are
    counted) and on plain or stripped models (Dense, Conv, Embedding, ...
    kernels are counted). Nested models appear as ``outer/inner``.

    Args:
        model: A Keras model.
        print_fn: Called with each line of the table; ``None`` prints nothing.

    Returns:
        One dict per weight: ``layer``, ``weight``, ``weights`` (count),
        ``zeros``, ``sparsity`` (0..1) and ``pruned`` (wrapped for pruning).

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)),
        ...                       keras.layers.Dense(2, kernel_initializer="zeros", name="fc")])
        >>> rows = sparsity_report(m, print_fn=None)
        >>> rows[0]["layer"], rows[0]["weights"], rows[0]["sparsity"]
        ('fc', 8, 1.0)
    """
    rows = []
    for layer_name, weight_name, values, pruned in _rows(model):
        zeros = int(values.size - np.count_nonzero(values))
        rows.append(
            {
                "layer": layer_name,
                "weight": weight_name,
                "weights": int(values.size),
                "zeros": zeros,
                "sparsity": zeros / max(values.size, 1),
                "pruned": pruned,
            }
        )
    if print_fn is not None:
        width = max([len(f"{r['layer']}/{r['weight']}") for r in rows] + [12])
        print_fn(f"{'layer':<{width}}  {'weights':>10}  {'zeros':>10}  {'sparsity':>8}")
        for r in rows:
            name = f"{r['layer']}/{r['weight']}"
            print_fn(f"{name:<{width}}  {r['weights']:>10}  {r['zeros']:>10}  {r['sparsity']:>8.2%}")
        total = sum(r["weights"] for r in rows)
        zeros = sum(r["zeros"] for r in rows)
        print_fn(f"{'total':<{width}}  {total:>10}  {zeros:>10}  {zeros / max(total, 1):>8.2%}")
    return rows


def overall_sparsity(model) -> float:
    """Fraction of exact zeros over all prunable weights of ``model`` (the table's total line; see the module)."""
    rows = sparsity_report(model, None)
    total = sum(r["weights"] for r in rows)
    return sum(r["zeros"] for r in rows) / total if total else 0.0


def layer_sparsities(model) -> dict:
    """``{layer/weight: sparsity}`` for every prunable weight (no printing)."""
    return {f"{r['layer']}/{r['weight']}": r["sparsity"] for r in sparsity_report(model, None)}
