"""`ClusterWeights`: the Keras 3 layer wrapper that clusters a layer's weights during training.

For each clusterable weight of the wrapped layer it adds a trainable
``cluster_centroids_<name>`` (``(k,)``, or ``(channels, k)`` per channel), a
non-trainable copy of the initial centroids (for the centroid drift that
:class:`~keras_compress.clustering.ClusteringSummaries` logs) and, with
``preserve_sparsity``, a non-trainable ``sparsity_mask_<name>`` taken when the
wrapper is built. In the forward pass the wrapped layer sees every weight
replaced by its nearest centroid (through ``keras.StatelessScope``, as the
pruning wrapper does); gradients reach the centroids and, straight-through,
the original weights, from which the assignment is recomputed at every call
(:mod:`~keras_compress.clustering.algorithm`). With ``preserve_sparsity`` the
masked weights stay exactly zero and the centroid nearest zero is held at 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_compress.clustering import algorithm, registry
from keras_compress.clustering.centroids import initial_centroids
from keras_compress.clustering.config import GradientAggregation, get_aggregation, get_init
from keras_compress.errors import ClusteringError

__all__ = ["ClusterWeights", "check_number_of_clusters", "collect_wrappers"]

_PACKAGE = "keras_compress.clustering"


@dataclass(frozen=True)
class _Clustered:
    """One clustered weight and its state (a plain object: Keras does not track it twice)."""

    name: str
    weight: object
    centroids: object
    initial: object
    mask: object | None


def check_number_of_clusters(number_of_clusters, preserve_sparsity: bool) -> int:
    """``number_of_clusters`` if it is an int above tfmot's limit (1, or 2 with preserve_sparsity)."""
    limit = 2 if preserve_sparsity else 1
    if not isinstance(number_of_clusters, (int, np.integer)) or isinstance(number_of_clusters, bool):
        raise ClusteringError(f"number_of_clusters must be an int, got {number_of_clusters!r}")
    if number_of_clusters <= limit:
        raise ClusteringError(
            f"number_of_clusters must be greater than {limit}"
            f"{' with preserve_sparsity=True' if preserve_sparsity else ''}, got {number_of_clusters}"
        )
    return int(number_of_clusters)


def collect_wrappers(model) -> list:
    """All :class:`ClusterWeights` layers of ``model``, nested models included."""
    if isinstance(model, ClusterWeights):
        return [model]
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, ClusterWeights):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(collect_wrappers(layer))
    return found


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClusterWeights(keras.layers.Wrapper):
    """Wraps a layer so that its weights take at most ``number_of_clusters`` values.

    Usually created by :func:`~keras_compress.clustering.cluster_weights`.

    Args:
        layer: the layer to cluster (see :mod:`~keras_compress.clustering.registry`).
        number_of_clusters: centroids per weight (per channel with ``cluster_per_channel``).
        cluster_centroids_init: a :class:`~keras_compress.clustering.CentroidInitialization`.
        preserve_sparsity: zeros stay exactly zero; one centroid is held at zero.
        cluster_per_channel: one set of centroids per output channel (Conv2D
            only, as tfmot; ignored for other layers).
        cluster_gradient_aggregation: ``GradientAggregation.SUM`` (default) or ``AVG``.
        **kwargs: passed to ``keras.layers.Wrapper`` (``name``, ...).

    Raises:
        ClusteringError: (a ``ValueError``) the layer cannot be clustered, or an
            argument is invalid; the message names the layer or the value.

    Example:
        >>> import keras, numpy as np
        >>> from keras_compress.clustering import ClusterWeights, CentroidInitialization
        >>> keras.utils.set_random_seed(0)
        >>> layer = ClusterWeights(keras.layers.Dense(8), 4, CentroidInitialization.LINEAR)
        >>> y = layer(np.ones((1, 16), "float32"))
        >>> len(np.unique(keras.ops.convert_to_numpy(layer.clustered_weights()["kernel"])))
        4
    """

    def __init__(
        self,
        layer,
        number_of_clusters,
        cluster_centroids_init="KMEANS_PLUS_PLUS",
        preserve_sparsity=False,
        cluster_per_channel=False,
        cluster_gradient_aggregation=GradientAggregation.SUM,
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model):
            raise ClusteringError(f"ClusterWeights needs a keras.layers.Layer instance, got {layer!r}")
        if isinstance(layer, ClusterWeights):
            raise ClusteringError(f"layer '{layer.name}' is already wrapped by ClusterWeights")
        verdict = registry.support(layer)
        if verdict.kind in ("skip", "unsupported"):
            raise ClusteringError(registry.unsupported_message(layer, verdict.reason))
        self.number_of_clusters = check_number_of_clusters(number_of_clusters, bool(preserve_sparsity))
        self.cluster_centroids_init = get_init(cluster_centroids_init)
        self.cluster_gradient_aggregation = get_aggregation(cluster_gradient_aggregation)
        kwargs.setdefault("name", f"cluster_{layer.name}")
        super().__init__(layer, **kwargs)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.cluster_per_channel = bool(cluster_per_channel) and type(layer) is keras.layers.Conv2D
        self._clustered = []
        self._state_variables = []  # so that TensorFlow's object graph reaches them too
        self.supports_masking = getattr(layer, "supports_masking", False)

    # ----------------------------------------------------------------- weights
    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        for name, weight in registry.clusterable_weights(self.layer):
            values = ops.convert_to_numpy(weight)
            init = initial_centroids(
                values, self.number_of_clusters, self.cluster_centroids_init,
                preserve_sparsity=self.preserve_sparsity, per_channel=self.cluster_per_channel,
            )
            short = name.replace("/", "_")
            centroids = self._state(f"cluster_centroids_{short}", init, trainable=True)
            initial = self._state(f"cluster_centroids_init_{short}", init, trainable=False)
            mask = None
            if self.preserve_sparsity:
                mask = self._state(f"sparsity_mask_{short}", (values != 0).astype(np.float32), trainable=False)
            self._clustered.append(_Clustered(name, weight, centroids, initial, mask))
        self.built = True

    def _state(self, name, value, *, trainable):
        variable = self.add_weight(name=name, shape=value.shape, initializer="zeros", trainable=trainable)
        variable.assign(value)
        self._state_variables.append(variable)
        return variable

    def get_clusterable_weights(self) -> list:
        """``[(name, variable), ...]``: the wrapped layer's weights that are clustered."""
        return [(c.name, c.weight) for c in self._clustered]

    def centroids(self) -> dict:
        """``{weight name: centroid variable}``."""
        return {c.name: c.centroids for c in self._clustered}

    def centroid_drift(self) -> dict:
        """``{weight name: mean |centroid - initial centroid|}`` (a float)."""
        return {
            c.name: float(np.mean(np.abs(ops.convert_to_numpy(c.centroids) - ops.convert_to_numpy(c.initial))))
            for c in self._clustered
        }

    def _clustered_value(self, c):
        weight = ops.convert_to_tensor(c.weight)
        centroids = ops.convert_to_tensor(c.centroids)
        if c.mask is not None:
            weight = weight * ops.cast(c.mask, weight.dtype)
            centroids = algorithm.centroids_with_zero(centroids)
        return algorithm.clustered_weight(
            weight, centroids, average_gradient=self.cluster_gradient_aggregation is GradientAggregation.AVG
        )

    def clustered_weights(self) -> dict:
        """``{weight name: tensor}``: the weights as the wrapped layer sees them (centroid values)."""
        return {c.name: self._clustered_value(c) for c in self._clustered}

    # ------------------------------------------------------------------ forward
    def call(self, inputs, *args, **kwargs):
        if not self._clustered:
            return self.layer.call(inputs, *args, **kwargs)
        clustered = {id(c.weight): self._clustered_value(c) for c in self._clustered}
        mapping = [(v, clustered.get(id(v), None)) for v in self.layer.variables]
        mapping = [(v, ops.convert_to_tensor(v) if value is None else value) for v, value in mapping]
        with keras.StatelessScope(state_mapping=mapping):
            return self.layer.call(inputs, *args, **kwargs)

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def apply_clusters(self) -> None:
        """Writes the centroid values into the wrapped layer's weights (eager; used by strip_clustering)."""
        for c, value in zip(self._clustered, [self._clustered_value(c) for c in self._clustered]):
            c.weight.assign(value)

    # ------------------------------------------------------------ serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "number_of_clusters": self.number_of_clusters,
                "cluster_centroids_init": self.cluster_centroids_init.value,
                "preserve_sparsity": self.preserve_sparsity,
                "cluster_per_channel": self.cluster_per_channel,
                "cluster_gradient_aggregation": self.cluster_gradient_aggregation.value,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"], custom_objects=custom_objects)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(**config)
