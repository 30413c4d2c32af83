"""Initial cluster centroids, computed as tfmot computes them.

Each method works on one interval of weights: all of them, or (with
``preserve_sparsity``) the negative and the positive ones separately, with
one centroid fixed at zero between them and the other centroids shared out
in proportion to the number of weights on each side (tfmot's
"sparsity-aware" initialization). ``per_channel`` does this for every output
channel (the last axis of a Keras kernel) and returns ``(channels, k)``.

Example:
    >>> import numpy as np
    >>> from keras_compress.clustering import CentroidInitialization
    >>> w = np.array([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0], "float32")
    >>> initial_centroids(w, 3, CentroidInitialization.LINEAR).tolist()
    [-1.0, 0.0, 1.0]
    >>> initial_centroids(w, 3, CentroidInitialization.LINEAR, preserve_sparsity=True).tolist()
    [-1.0, 0.0, 0.5]
"""

from __future__ import annotations

import keras
import numpy as np

from keras_compress.clustering.config import CentroidInitialization, get_init

__all__ = ["initial_centroids"]

_KMEANS_SEED = 9  # tfmot's fixed seed for k-means++
_CDF_POINTS = 30  # tfmot's grid for the density-based method


def _linear(w, n, preserve_sparsity):
    return np.linspace(w.min(), w.max(), n, dtype=np.float32)


def _random(w, n, preserve_sparsity):
    values = keras.random.uniform((n,), minval=float(w.min()), maxval=float(w.max()), dtype="float32")
    return keras.ops.convert_to_numpy(values)


def _density(w, n, preserve_sparsity):
    lo, hi = float(w.min()), float(w.max())
    gap = min(0.01, min(abs(lo), abs(hi)) / 2) if preserve_sparsity else 0.01
    grid = np.linspace(lo - gap, hi + gap, _CDF_POINTS, dtype=np.float32)
    cdf = (w[None, :] <= grid[:, None]).sum(axis=1).astype(np.float32) / np.float32(w.size)
    probability = np.linspace(0.01, 1.0, n, dtype=np.float32)
    index = np.searchsorted(cdf, probability, side="right")
    # tfmot interpolates between grid[i - 1] and grid[i] and solves the line at
    # cdf[i], which is grid[i] itself.
    return grid[np.minimum(index, _CDF_POINTS - 1)]


def _kmeans_plus_plus(w, n, preserve_sparsity):
    import tensorflow as tf  # TensorFlow's k-means++ op, the one tfmot calls (public in tf.raw_ops)

    unique = np.unique(w)
    if unique.size <= n:  # fewer distinct weights than clusters: each is a centroid
        return np.concatenate([unique, np.full(n - unique.size, unique[-1])]).astype(np.float32)
    out = tf.raw_ops.KmeansPlusPlusInitialization(
        points=tf.constant(w.reshape(-1, 1)),
        num_to_sample=tf.constant(n, tf.int64),
        seed=tf.constant(_KMEANS_SEED, tf.int64),
        num_retries_per_sample=tf.constant(-1, tf.int64),
    )
    return out.numpy().reshape(n).astype(np.float32)


_METHODS = {
    CentroidInitialization.LINEAR: _linear,
    CentroidInitialization.RANDOM: _random,
    CentroidInitialization.DENSITY_BASED: _density,
    CentroidInitialization.KMEANS_PLUS_PLUS: _kmeans_plus_plus,
}


def _interval(method, w, n, preserve_sparsity):
    if n <= 0 or w.size == 0:
        return np.zeros((0,), np.float32)
    return np.asarray(method(w, n, preserve_sparsity), np.float32).reshape(n)


def _one_tensor(method, w, n, preserve_sparsity):
    w = np.asarray(w, np.float32).reshape(-1)
    if not preserve_sparsity:
        return _interval(method, w, n, False)
    negative, positive = w[w < 0], w[w > 0]
    nonzero = negative.size + positive.size
    if nonzero == 0:
        return np.zeros((n,), np.float32)
    n_negative = int(np.round((n - 1) * negative.size / nonzero))  # banker's rounding, as tf.math.round
    parts = [
        _interval(method, negative, n_negative, True),
        np.zeros((1,), np.float32),
        _interval(method, positive, n - 1 - n_negative, True),
    ]
    return np.concatenate(parts)


def initial_centroids(
    weights,
    number_of_clusters: int,
    init=CentroidInitialization.KMEANS_PLUS_PLUS,
    *,
    preserve_sparsity: bool = False,
    per_channel: bool = False,
) -> np.ndarray:
    """The initial centroids of ``weights``: shape ``(k,)``, or ``(channels, k)`` per channel.

    Args:
        weights: the weight values (any shape; per channel: the last axis).
        number_of_clusters: ``k``.
        init: a :class:`CentroidInitialization` (or its name).
        preserve_sparsity: one centroid exactly zero, the others split between
            negative and positive weights (tfmot's zero-centroid initialization).
        per_channel: centroids for every slice along the last axis.
    """
    method = _METHODS[get_init(init)]
    w = np.asarray(weights, np.float32)
    if not per_channel:
        return _one_tensor(method, w, number_of_clusters, preserve_sparsity)
    channels = w.reshape(-1, w.shape[-1]).T
    return np.stack([_one_tensor(method, c, number_of_clusters, preserve_sparsity) for c in channels])
