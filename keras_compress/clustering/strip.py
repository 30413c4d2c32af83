"""`strip_clustering`: back to a plain Keras model whose weights hold the centroid values."""

from __future__ import annotations

import keras

from keras_compress.clustering.wrapper import ClusterWeights, collect_wrappers
from keras_compress.errors import ClusteringError
from keras_compress.pruning import modelcopy

__all__ = ["strip_clustering"]


def strip_clustering(model):
    """Removes the clustering wrappers and returns a plain Keras model.

    Each :class:`ClusterWeights` is replaced by (a copy of) the layer it
    wraps, whose clustered weights now hold their centroid values (at most
    ``number_of_clusters`` distinct values each; zeros kept with
    ``preserve_sparsity``). The returned model has its own weights, needs no
    custom object to load, and converts to TFLite like the original model.

    Args:
        model: a model from :func:`cluster_weights` (or a single wrapper, for
            which the wrapped layer is returned).

    Returns:
        A ``keras.Model`` (or layer) without clustering wrappers.

    Raises:
        ClusteringError: ``model`` is neither a model nor a ClusterWeights layer.

    Example:
        >>> import keras
        >>> from keras_compress.clustering import cluster_weights, strip_clustering
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
        >>> [type(l).__name__ for l in strip_clustering(cluster_weights(model, 4)).layers]
        ['Dense']
    """
    if isinstance(model, ClusterWeights):
        model.apply_clusters()
        return model.layer
    if not isinstance(model, keras.Model):
        raise ClusteringError(
            f"strip_clustering needs a keras.Model or a ClusterWeights layer, got {type(model).__name__}"
        )
    for wrapper in collect_wrappers(model):
        if wrapper.built:
            wrapper.apply_clusters()

    def unwrap(layer):
        return layer.layer if isinstance(layer, ClusterWeights) else layer

    shared = modelcopy.clone(model, unwrap, compiled=True)
    if modelcopy.first_unrebuildable(shared) is not None:
        return shared  # a custom layer cannot be copied: share its layers, as tfmot does
    return modelcopy.copy_model(shared, compiled=True)
