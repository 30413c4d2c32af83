"""`cluster_weights`: the entry point, with tfmot's signature.

Example:
    >>> import keras
    >>> from keras_compress.clustering import cluster_weights, CentroidInitialization
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="a"),
    ...                           keras.layers.ReLU(name="r"), keras.layers.Dense(2, name="b")])
    >>> clustered = cluster_weights(model, 4, CentroidInitialization.LINEAR)
    >>> [layer.name for layer in clustered.layers]
    ['cluster_a', 'r', 'cluster_b']
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_compress.clustering import registry
from keras_compress.clustering.config import CentroidInitialization, get_init
from keras_compress.clustering.wrapper import ClusterWeights, check_number_of_clusters
from keras_compress.errors import ClusteringError
from keras_compress.pruning import modelcopy

__all__ = ["cluster_layers", "cluster_scope", "cluster_weights", "clusterable_layer_names", "leaf_layers"]

_INVALID = (
    "cluster_weights can only cluster a keras.Sequential, a Functional model, a keras.layers.Layer or "
    "a list of layers; got an object of type {kind}"
)


def cluster_weights(
    to_cluster,
    number_of_clusters: int,
    cluster_centroids_init=CentroidInitialization.KMEANS_PLUS_PLUS,
    preserve_sparsity: bool = False,
    cluster_per_channel: bool = False,
    **kwargs,
):
    """Wraps a model, a layer or a list of layers for weight clustering.

    A layer or a list of layers is wrapped as given. A model (Sequential or
    Functional, nested ones included) is copied (own weights, no optimizer:
    ``compile`` it), with every clusterable layer wrapped in
    :class:`ClusterWeights` and the others unchanged. DepthwiseConv layers are
    skipped (a warning gives tfmot's reason), and so are layers with no more
    weights than clusters (per channel with ``cluster_per_channel``), as tfmot
    skips such Conv2D layers. Train with ``model.fit`` (no callback needed),
    then call :func:`strip_clustering`.

    Args:
        to_cluster: a ``keras.Model`` (Sequential or Functional), a layer, or a list of layers.
        number_of_clusters: the number of values each weight keeps (per
            channel with ``cluster_per_channel``); more than 1 (more than 2
            with ``preserve_sparsity``).
        cluster_centroids_init: a :class:`CentroidInitialization` (default
            KMEANS_PLUS_PLUS) or its name.
        preserve_sparsity: keep the zeros of a pruned model exactly zero (one
            centroid held at zero; it is not trained).
        cluster_per_channel: centroids per output channel (Conv2D only, as tfmot).
        **kwargs: passed to each :class:`ClusterWeights` (e.g.
            ``cluster_gradient_aggregation``).

    Returns:
        The wrapped model, layer or list of layers.

    Raises:
        ClusteringError: (a ``ValueError``) a layer that cannot be clustered
            (a custom layer without ``get_clusterable_weights()``, a subclass of
            a built-in layer, LSTM, ...; a DepthwiseConv layer given on its
            own), a subclassed model, or an invalid argument; the message names
            the layer or the value.

    Example:
        >>> layer = cluster_weights(keras.layers.Dense(3, name="fc"), 8)
        >>> type(layer).__name__, layer.name
        ('ClusterWeights', 'cluster_fc')
    """
    params = dict(
        number_of_clusters=check_number_of_clusters(number_of_clusters, bool(preserve_sparsity)),
        cluster_centroids_init=get_init(cluster_centroids_init),
        preserve_sparsity=bool(preserve_sparsity),
        cluster_per_channel=bool(cluster_per_channel),
        **kwargs,
    )
    if isinstance(to_cluster, (list, tuple)):
        bad = [layer for layer in to_cluster if not isinstance(layer, keras.layers.Layer)]
        if bad:
            raise ClusteringError(_INVALID.format(kind=type(bad[0]).__name__))
        return [_wrap(layer, params) for layer in to_cluster]
    if isinstance(to_cluster, keras.Model):
        if not (isinstance(to_cluster, keras.Sequential) or modelcopy.is_functional(to_cluster)):
            raise ClusteringError(_INVALID.format(kind=f"{type(to_cluster).__name__} (a subclassed model)"))
        return _cluster_model(to_cluster, lambda layer: params)
    if isinstance(to_cluster, keras.layers.Layer):
        return _wrap(to_cluster, params)
    raise ClusteringError(_INVALID.format(kind=type(to_cluster).__name__))


def _wrap(layer, params):
    if isinstance(layer, ClusterWeights) or registry.support(layer).kind == "none":
        return layer
    return ClusterWeights(layer, **params)


def _check_model(model) -> None:
    """Refuses subclassed nested models and layers clustering does not know, naming them."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if not (isinstance(layer, keras.Sequential) or modelcopy.is_functional(layer)):
                raise ClusteringError(
                    f"layer '{layer.name}' of model '{model.name}' is a subclassed model "
                    f"({type(layer).__name__}): cluster_weights needs Sequential or Functional models; "
                    "wrap the layers inside its __init__ with cluster_weights(layer, ...)"
                )
            _check_model(layer)
        elif not isinstance(layer, (ClusterWeights, keras.layers.InputLayer)):
            verdict = registry.support(layer)
            if verdict.kind == "unsupported":
                raise ClusteringError(registry.unsupported_message(layer, verdict.reason))


def _too_small(layer, params) -> str | None:
    """Why a built layer is left unclustered (no more weights than clusters), or None."""
    k = params["number_of_clusters"]
    per_channel = params["cluster_per_channel"] and type(layer) is keras.layers.Conv2D
    for name, weight in registry.clusterable_weights(layer):
        count = int(np.prod(weight.shape)) // (int(weight.shape[-1]) if per_channel else 1)
        if count <= k:
            return f"its {name} has {count} weights{' per channel' if per_channel else ''}, not more than {k} clusters"
    return None


def _cluster_model(model, params_for):
    """A copy of ``model`` with each layer for which ``params_for(layer)`` gives parameters wrapped."""
    _check_model(model)
    skipped = []

    def clone_fn(layer):
        verdict = registry.support(layer)
        if isinstance(layer, ClusterWeights) or verdict.kind == "none":
            return layer
        params = params_for(layer)
        if params is None:
            return layer
        if verdict.kind == "skip":
            skipped.append(f"'{layer.name}' ({verdict.reason})")
            return layer
        reason = _too_small(layer, params) if layer.built else None
        if reason is not None:
            skipped.append(f"'{layer.name}' ({reason})")
            return layer
        return ClusterWeights(layer, **params)

    source = modelcopy.copy_model(model) if modelcopy.first_unrebuildable(model) is None else model
    clustered = modelcopy.clone(source, clone_fn)
    if skipped:
        warnings.warn(f"cluster_weights: left unclustered: {'; '.join(skipped)}", stacklevel=3)
    return clustered


def leaf_layers(model):
    """The layers of ``model`` and of its nested models (input layers left out)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def clusterable_layer_names(model) -> list[str]:
    """Names of the layers :func:`cluster_weights` would wrap (nested models included).

    Example:
        >>> m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="c"),
        ...                       keras.layers.DepthwiseConv2D(1, name="dw"), keras.layers.Flatten(name="f")])
        >>> clusterable_layer_names(m)
        ['c']
    """
    return [layer.name for layer in leaf_layers(model) if registry.support(layer).kind == "cluster"]


def cluster_layers(model, clusters: dict, **kwargs):
    """A copy of ``model`` with each named layer clustered to its own number of clusters.

    Args:
        model: a Sequential / Functional model (not modified).
        clusters: ``{layer name: number_of_clusters}``; other layers stay unwrapped.
        **kwargs: :func:`cluster_weights`' other arguments (``cluster_centroids_init``,
            ``preserve_sparsity``, ``cluster_per_channel``, ...).

    Raises:
        ClusteringError: a name that is no layer of the model, or a layer
            that cannot be clustered (the message names it and says why).
    """
    layers = {layer.name: layer for layer in leaf_layers(model)}
    for name in clusters:
        if name not in layers:
            raise ClusteringError(f"model {model.name!r}: no layer named {name!r}; clusterable: {clusterable_layer_names(model)}")
        verdict = registry.support(layers[name])
        if verdict.kind != "cluster":
            raise ClusteringError(registry.unsupported_message(layers[name], verdict.reason or "it has no weights"))
    init = get_init(kwargs.pop("cluster_centroids_init", CentroidInitialization.KMEANS_PLUS_PLUS))
    sparse = bool(kwargs.pop("preserve_sparsity", False))
    params = {
        name: dict(number_of_clusters=check_number_of_clusters(k, sparse), cluster_centroids_init=init,
                   preserve_sparsity=sparse, cluster_per_channel=bool(kwargs.get("cluster_per_channel", False)),
                   **{key: v for key, v in kwargs.items() if key != "cluster_per_channel"})
        for name, k in clusters.items()
    }
    return _cluster_model(model, lambda layer: params.get(layer.name))


def cluster_scope():
    """tfmot's ``cluster_scope``: the custom objects of a clustered model, as a scope.

    Not needed to load models saved by keras_compress (its classes are registered).

    Example:
        >>> with cluster_scope():
        ...     pass
    """
    return keras.saving.custom_object_scope({"ClusterWeights": ClusterWeights})
