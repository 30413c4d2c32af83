"""Which weights of which layer are clustered: tfmot's clustering registry, on Keras 3.

Layers are matched by their exact class (a subclass of ``Dense`` may use its
kernel differently). A custom layer opts in with
``get_clusterable_weights()`` (:class:`ClusterableLayer`), returning
``[(name, variable), ...]`` as in tfmot.

=====================================  ============================
layer (exact class)                    clustered weights
=====================================  ============================
Dense                                  kernel
Conv1D / Conv2D / Conv3D               kernel
Conv1D/2D/3DTranspose                  kernel
SeparableConv1D / SeparableConv2D      pointwise_kernel
Embedding                              embeddings
DepthwiseConv1D / DepthwiseConv2D      skipped (see ``DEPTHWISE_REASON``)
layers without weights, normalization  nothing (left as they are)
=====================================  ============================

Other built-in layers with weights (LSTM, MultiHeadAttention, EinsumDense,
...) and custom layers without ``get_clusterable_weights()`` are refused
with an error naming them.

Example:
    >>> import keras
    >>> from keras_compress.clustering.registry import support
    >>> support(keras.layers.Dense(3)).kind, support(keras.layers.DepthwiseConv2D(3)).kind
    ('cluster', 'skip')
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import keras

from keras_compress.errors import ClusteringError

__all__ = [
    "DEPTHWISE_REASON",
    "ClusterableLayer",
    "Support",
    "clusterable_weights",
    "support",
    "unsupported_message",
]

_L = keras.layers

_WEIGHTS = {
    _L.Dense: "kernel",
    _L.Conv1D: "kernel",
    _L.Conv2D: "kernel",
    _L.Conv3D: "kernel",
    _L.Conv1DTranspose: "kernel",
    _L.Conv2DTranspose: "kernel",
    _L.Conv3DTranspose: "kernel",
    _L.SeparableConv1D: "pointwise_kernel",
    _L.SeparableConv2D: "pointwise_kernel",
    _L.Embedding: "embeddings",
}
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
DEPTHWISE_REASON = (
    "depthwise kernels are not clustered: tfmot measured a large accuracy loss that fine-tuning "
    "does not recover (its registry maps DepthwiseConv2D to no weights)"
)
_KEEP = tuple(
    getattr(_L, name)
    for name in (
        "BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization",
        "UnitNormalization", "Normalization", "PReLU",
    )
    if hasattr(_L, name)
)


class ClusterableLayer(abc.ABC):
    """tfmot's interface for custom layers: say which weights to cluster.

    Example:
        >>> import keras
        >>> class Scaled(keras.layers.Dense, ClusterableLayer):
        ...     def get_clusterable_weights(self):
        ...         return [("kernel", self.kernel)]
        >>> support(Scaled(2)).kind
        'cluster'
    """

    @abc.abstractmethod
    def get_clusterable_weights(self) -> list:
        """``[(name, variable), ...]`` to cluster (``[]`` if none)."""


class Support(NamedTuple):
    """How clustering treats a layer: ``kind`` is ``"cluster"``, ``"none"``, ``"skip"`` or ``"unsupported"``."""

    kind: str
    reason: str = ""


def _custom(layer) -> bool:
    return isinstance(layer, ClusterableLayer) or callable(getattr(layer, "get_clusterable_weights", None))


def support(layer) -> Support:
    """Says whether ``layer`` is clustered, has nothing to cluster, is skipped or refused (and why)."""
    cls = type(layer)
    if _custom(layer):
        return Support("cluster")
    if cls in _WEIGHTS:
        return Support("cluster")
    if cls in _DEPTHWISE:
        return Support("skip", DEPTHWISE_REASON)
    if isinstance(layer, keras.Model):
        return Support("unsupported", "it is a model (give its layers, or the model itself to cluster_weights)")
    if isinstance(layer, _KEEP) and type(layer).__module__.startswith("keras"):
        return Support("none")
    base = next((c for c in cls.__mro__[1:] if c in _WEIGHTS), None)
    if base is not None:
        return Support(
            "unsupported",
            f"it subclasses {base.__name__}, and subclasses are not matched as their base class; "
            "implement get_clusterable_weights() (keras_compress.clustering.ClusterableLayer)",
        )
    if layer.built and not layer.weights:
        return Support("none")
    if not layer.built and cls.__module__.startswith("keras") and cls.build is _L.Layer.build:
        return Support("none")
    return Support(
        "unsupported",
        "clustering does not know this layer's weights (clusterable: Dense, Conv1D/2D/3D and their "
        "Transpose, SeparableConv1D/2D, Embedding, or a layer with get_clusterable_weights())",
    )


def clusterable_weights(layer) -> list:
    """``[(name, variable), ...]`` of a built ``layer`` that clustering replaces by centroids.

    Raises:
        ClusteringError: the layer is skipped or refused (the message names it and says why).

    Example:
        >>> import keras
        >>> conv = keras.layers.SeparableConv2D(4, 3)
        >>> conv.build((None, 8, 8, 2))
        >>> [name for name, _ in clusterable_weights(conv)]
        ['pointwise_kernel']
    """
    verdict = support(layer)
    if verdict.kind in ("skip", "unsupported"):
        raise ClusteringError(unsupported_message(layer, verdict.reason))
    if verdict.kind == "none":
        return []
    if _custom(layer):
        return list(layer.get_clusterable_weights())
    name = _WEIGHTS[type(layer)]
    return [(name, getattr(layer, name))]


def unsupported_message(layer, reason: str) -> str:
    return (
        f"layer '{layer.name}' ({type(layer).__name__}) cannot be clustered: {reason}. Leave it out of "
        "the layers you wrap, or cluster the other layers one by one with cluster_weights(layer, ...)"
    )
