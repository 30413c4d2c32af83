"""Weight clustering for Keras 3 in ``model.fit``, with tfmot's names.

Moving from tfmot is a change of import::

    from keras_compress import clustering   # was tfmot.clustering.keras

    model = clustering.cluster_weights(
        model, number_of_clusters=16,
        cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)
    model.compile(...)
    model.fit(x, y, callbacks=[clustering.ClusteringSummaries("logs")])
    model = clustering.strip_clustering(model)

Each clustered weight then holds at most ``number_of_clusters`` distinct
values, which gzip (and the Edge TPU's parameter cache, once compressed)
stores in a few bits each. For int8 TFLite keep the clusters through QAT
with ``quantize_model(model, preserve_clusters=True)``; after pruning, cluster
with ``preserve_sparsity=True`` and quantize with both ``preserve_sparsity``
and ``preserve_clusters``.

Modules: ``config`` (CentroidInitialization, GradientAggregation),
``centroids`` (initial centroids), ``algorithm`` (nearest-centroid lookup
and its gradients), ``registry`` (which weights of which layer;
ClusterableLayer), ``wrapper`` (ClusterWeights), ``cluster``
(cluster_weights), ``strip``, ``callbacks`` (ClusteringSummaries),
``report`` (unique values per layer).
"""

from keras_compress.clustering.callbacks import ClusteringSummaries
from keras_compress.clustering.centroids import initial_centroids
from keras_compress.clustering.cluster import cluster_scope, cluster_weights
from keras_compress.clustering.config import CentroidInitialization, GradientAggregation
from keras_compress.clustering.registry import ClusterableLayer
from keras_compress.clustering.report import max_unique_per_channel, unique_value_counts
from keras_compress.clustering.strip import strip_clustering
from keras_compress.clustering.wrapper import ClusterWeights, collect_wrappers

__all__ = [
    "CentroidInitialization",
    "ClusterWeights",
    "ClusterableLayer",
    "ClusteringSummaries",
    "GradientAggregation",
    "cluster_scope",
    "cluster_weights",
    "collect_wrappers",
    "initial_centroids",
    "max_unique_per_channel",
    "strip_clustering",
    "unique_value_counts",
]
