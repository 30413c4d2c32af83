"""`unique_value_counts`: how many distinct values each clusterable weight holds.

Looks through clustering wrappers (their centroid values), QAT and other
wrappers and nested models; for a stripped model it counts the weights
themselves. Per output channel too, as the int8 check reads them.

Example:
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="ones", name="fc")])
    >>> unique_value_counts(m)
    {'fc/kernel': 1}
"""

from __future__ import annotations

import keras
import numpy as np

from keras_compress.clustering import registry
from keras_compress.clustering.wrapper import ClusterWeights

__all__ = ["max_unique_per_channel", "unique_value_counts"]


def _rows(model, prefix=""):
    for layer in getattr(model, "layers", []):
        if isinstance(layer, ClusterWeights):
            for name, value in layer.clustered_weights().items():
                yield f"{prefix}{layer.layer.name}/{name}", keras.ops.convert_to_numpy(value)
        elif isinstance(layer, keras.Model):
            yield from _rows(layer, f"{prefix}{layer.name}/")
        elif isinstance(getattr(layer, "layer", None), keras.layers.Layer):
            yield from _rows(_Single(layer.layer), prefix)
        elif layer.built and registry.support(layer).kind == "cluster":
            for name, weight in registry.clusterable_weights(layer):
                yield f"{prefix}{layer.name}/{name}", keras.ops.convert_to_numpy(weight)


class _Single:
    def __init__(self, layer):
        self.layers = [layer]


def unique_value_counts(model) -> dict:
    """``{"layer/weight": number of distinct values}`` over the model's clusterable weights."""
    return {key: int(np.unique(value).size) for key, value in _rows(model)}


def max_unique_per_channel(values, axis: int = -1) -> int:
    """The largest number of distinct values in one slice along ``axis`` (an output channel).

    Example:
        >>> max_unique_per_channel(np.array([[1, 2], [1, 5], [3, 6]]))
        3
    """
    values = np.moveaxis(np.asarray(values), axis, -1).reshape(-1, np.shape(values)[axis])
    return max(int(np.unique(values[:, c]).size) for c in range(values.shape[1]))
