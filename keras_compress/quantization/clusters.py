"""Cluster-preserving QAT (tfmot's CQAT, and PCQAT with ``preserve_sparsity``).

``quantize_model(model, preserve_clusters=True)`` on a clustered (and
stripped) model: every kernel of a Conv / Dense layer with at most
``MAX_CLUSTERS`` distinct values, per tensor or per output channel, keeps
them as trainable centroids. In the forward pass each weight takes its
nearest centroid (the assignment recomputed from the weights at every step,
straight-through gradients to the weights, summed gradients to the
centroids, as tfmot's CQAT does) before it is fake-quantized. The
assignment is kept in a non-trainable ``<kernel>_pulling_indices`` variable
(tfmot's name), refreshed at every training step, so that the exported graph
is a gather the converter folds into a constant; so the int8
kernel holds at most as many values per output channel as there were
clusters. With ``preserve_sparsity`` a centroid that is exactly zero stays
zero (it gets no gradient) and the masked weights stay zero. Depthwise
kernels are not clustered (:mod:`keras_compress.clustering.registry`) and
are left alone; so are Embedding tables.

Example:
    >>> import numpy as np
    >>> centroids_of(np.array([[0.5, -0.5], [0.5, 0.0]], "float32")).tolist()
    [-0.5, 0.0, 0.5]
    >>> centroids_of(np.arange(600, dtype="float32").reshape(300, 2)) is None
    True
"""

from __future__ import annotations

import warnings

import numpy as np
from keras import ops

from keras_compress.clustering.algorithm import gather_centroids, pulling_indices

__all__ = ["MAX_CLUSTERS", "add_centroids", "centroids_of", "clustered", "layout", "refresh"]

MAX_CLUSTERS = 256  # more distinct values than an int8 channel can hold: not a clustered kernel


def centroids_of(values) -> np.ndarray | None:
    """The distinct values of a kernel: ``(k,)``, or ``(channels, k)`` per output channel; None if too many."""
    values = np.asarray(values, np.float32)
    unique = np.unique(values)
    if unique.size <= MAX_CLUSTERS:
        return unique
    channels = [np.unique(c) for c in values.reshape(-1, values.shape[-1]).T]
    k = max(c.size for c in channels)
    if k > MAX_CLUSTERS:
        return None
    # pad with each channel's last value: a repeated centroid is never the first nearest one
    return np.stack([np.concatenate([c, np.full(k - c.size, c[-1], np.float32)]) for c in channels])


def add_centroids(scheme, spec) -> dict:
    """Adds a trainable centroid variable per clustered kernel of a KernelScheme's wrapper.

    ``spec``: True (read the kernels' distinct values now), or the ``{kernel
    name: centroid shape}`` of :func:`layout` (a model being loaded).
    """
    found = {}
    for name in scheme.kernel_names():
        if isinstance(spec, dict):
            if name not in spec:
                continue
            init, shape = None, tuple(spec[name])
        else:
            if scheme.is_depthwise(name):
                continue
            init = centroids_of(ops.convert_to_numpy(scheme.raw(name)))
            if init is None:
                warnings.warn(
                    f"preserve_clusters: layer '{scheme.k.name}' {name} has more than {MAX_CLUSTERS} distinct "
                    "values per output channel (not a clustered kernel): it is quantized without clusters",
                    stacklevel=2,
                )
                continue
            shape = init.shape
        variable = scheme.w.add_weight(
            name=f"{name}_cluster_centroids", shape=shape, initializer="zeros", trainable=True
        )
        kernel = scheme.raw(name, clustered=False)
        indices = scheme.w.add_weight(
            name=f"{name}_pulling_indices", shape=tuple(kernel.shape), initializer="zeros", dtype="int32",
            trainable=False,
        )
        if init is not None:
            variable.assign(init)
            indices.assign(ops.cast(pulling_indices(kernel, variable), "int32"))
        found[name] = (variable, indices)
    return found


def layout(centroids: dict) -> dict:
    """``{kernel name: centroid shape}``: what a saved wrapper needs to rebuild its centroids."""
    return {name: list(variables[0].shape) for name, variables in centroids.items()}


def _centroids(variable, preserve_sparsity):
    c = ops.convert_to_tensor(variable)
    if preserve_sparsity:  # a zero centroid stays zero: it gets no gradient
        c = c * ops.stop_gradient(ops.cast(ops.not_equal(c, 0.0), c.dtype))
    return c


def clustered(kernel, state, preserve_sparsity: bool):
    """``kernel`` with every weight replaced by its assigned centroid (straight-through gradients)."""
    centroids, indices = state
    return gather_centroids(_centroids(centroids, preserve_sparsity), indices, kernel)


def refresh(scheme) -> None:
    """Reassigns every weight to its nearest centroid (each training step, as tfmot's CQAT)."""
    for name, (centroids, indices) in scheme.clusters.items():
        kernel = ops.stop_gradient(scheme.raw(name, clustered=False))
        c = ops.stop_gradient(_centroids(centroids, scheme.w.preserve_sparsity))
        indices.assign(ops.cast(pulling_indices(kernel, c), "int32"))
