"""The clustering forward pass: nearest-centroid lookup with tfmot's gradients.

``clustered_weight`` returns every weight replaced by its nearest centroid.
In the backward pass the centroids get the sum (or the mean) of their
weights' gradients, and the original weights get the whole gradient
(straight-through), so they can move to another cluster: the assignment is
recomputed from them on every forward pass, as tfmot's wrapper does. Pure
functions of tensors (``keras.ops``): no variable is assigned during a
training step. Shared by the clustering wrapper and cluster-preserving QAT.

Example:
    >>> import numpy as np
    >>> w = np.array([[0.1, 0.9], [0.45, -0.2]], "float32")
    >>> c = np.array([0.0, 0.5, 1.0], "float32")
    >>> import keras
    >>> keras.ops.convert_to_numpy(clustered_weight(w, c)).tolist()
    [[0.0, 1.0], [0.5, 0.0]]
"""

from __future__ import annotations

from keras import ops

__all__ = ["centroids_with_zero", "clustered_weight", "gather_centroids", "pulling_indices"]


def pulling_indices(weight, centroids):
    """Index of the nearest centroid of every weight (``centroids``: ``(k,)``, or ``(channels, k)``).

    One set of centroids: a binary search of each weight among the midpoints
    of the sorted centroids (n log k work, no ``(n, k)`` distance tensor).
    Per-channel centroids: the argmin of the distances, as tfmot computes both.
    """
    if len(centroids.shape) == 1:
        order = ops.argsort(centroids)
        ordered = ops.take(centroids, order)
        midpoints = (ordered[1:] + ordered[:-1]) / 2.0
        slot = ops.searchsorted(midpoints, ops.reshape(weight, (-1,)), side="left")
        return ops.reshape(ops.take(order, slot), ops.shape(weight))
    return ops.argmin(ops.abs(ops.expand_dims(weight, -1) - centroids), axis=-1)


def centroids_with_zero(centroids):
    """``centroids`` with the one nearest zero (per channel) set to exactly 0 and frozen (no gradient)."""
    k = centroids.shape[-1]
    zero_slot = ops.one_hot(ops.argmin(ops.abs(ops.stop_gradient(centroids)), axis=-1), k, dtype=centroids.dtype)
    return centroids * (1.0 - zero_slot)


def _flat_indices(indices, centroids):
    """Indices into ``reshape(centroids, [-1])`` (per-channel centroids: row ``c`` for channel ``c``)."""
    if len(centroids.shape) == 1:
        return indices
    channels, k = centroids.shape
    return indices + ops.cast(ops.arange(channels) * k, indices.dtype)


def _averaged(centroids, flat):
    """Same values; the gradient of each centroid divided by its number of weights."""
    sizes = ops.bincount(ops.reshape(flat, (-1,)), minlength=int(ops.size(centroids)))
    sizes = ops.reshape(ops.cast(ops.maximum(sizes, 1), centroids.dtype), centroids.shape)
    frozen = ops.stop_gradient(centroids)
    return frozen + (centroids - frozen) / ops.stop_gradient(sizes)


def gather_centroids(centroids, indices, weight):
    """The centroids at ``indices``, with straight-through gradients to ``weight`` (same shape).

    With indices kept in a variable this is only a GATHER and a subtraction,
    which the TFLite converter folds into a constant kernel.
    """
    centroids = ops.convert_to_tensor(centroids)
    gathered = ops.take(ops.reshape(centroids, (-1,)), _flat_indices(indices, centroids))
    return gathered + (weight - ops.stop_gradient(weight))


def clustered_weight(weight, centroids, *, average_gradient: bool = False):
    """Every weight replaced by its nearest centroid, with straight-through gradients to ``weight``.

    Args:
        weight: the original weights (``(..., channels)`` for per-channel centroids).
        centroids: ``(k,)`` or ``(channels, k)``.
        average_gradient: tfmot's ``GradientAggregation.AVG`` (default: SUM).
    """
    weight = ops.convert_to_tensor(weight)
    centroids = ops.convert_to_tensor(centroids)
    flat = _flat_indices(pulling_indices(ops.stop_gradient(weight), ops.stop_gradient(centroids)), centroids)
    table = _averaged(centroids, flat) if average_gradient else centroids
    gathered = ops.take(ops.reshape(table, (-1,)), flat)
    return gathered + (weight - ops.stop_gradient(weight))
