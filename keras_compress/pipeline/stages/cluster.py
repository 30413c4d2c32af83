"""``cluster``: weight clustering while fine-tuning, per-layer numbers of clusters, then ``strip_clustering``.

``number_of_clusters`` is one value for every clusterable layer (Dense, Conv,
SeparableConv's pointwise kernel, Embedding; DepthwiseConv is skipped) or a
per-layer map ``{regex: clusters or null}`` (the budget search's knob).
Pruning zeros are kept when the model came through a ``prune`` stage
(``preserve_sparsity`` left to ``null``), or as ``preserve_sparsity`` says; a
following ``qat`` stage then keeps the clusters too. With a ``teacher``, the
fine-tuning is distilled.

Recipe form::

    - cluster: {number_of_clusters: 16, epochs: 2}
    - cluster: {number_of_clusters: {"conv": 16, "^logits$": 32}, init: density_based}

Example:
    >>> from keras_compress.pipeline.spec import build_spec
    >>> spec = build_spec(ClusterSpec, {"number_of_clusters": {"conv": 16, "^fc$": 32}}, "cluster")
    >>> spec.number_of_clusters.resolve(["conv1", "fc", "logits"]), spec.init
    ({'conv1': 16, 'fc': 32}, 'kmeans_plus_plus')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import FitSpec, fit
from keras_compress.pipeline.layermap import LayerMap
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import boolean, choice, file_name, integer, number, optional, per_layer, setting

__all__ = ["ClusterSpec", "INITS", "run", "STAGE"]

INITS = ("kmeans_plus_plus", "density_based", "linear", "random")


@dataclass(frozen=True, kw_only=True)
class ClusterSpec(FitSpec):
    """Clusters (one number, or per layer), centroid init, sparsity, the fine-tuning schedule, a teacher."""

    number_of_clusters: LayerMap = setting(per_layer(integer(2, 65_536)), LayerMap.of(16))
    init: str = setting(choice(INITS), "kmeans_plus_plus")
    preserve_sparsity: bool | None = setting(optional(boolean), None)
    cluster_per_channel: bool = setting(boolean, False)
    epochs: int = setting(integer(1, 10_000), 2)
    learning_rate: float = setting(number(0.0, 1.0, lo_open=True), 1e-4)
    teacher: str | None = setting(optional(file_name), None)


def _refuse_named_unclusterable(spec: ClusterSpec, model, candidates) -> None:
    """A pattern that names only layers clustering cannot take is an error naming the layer and why."""
    from keras_compress.clustering import registry
    from keras_compress.clustering.cluster import leaf_layers
    from keras_compress.errors import ClusteringError

    for pattern in spec.number_of_clusters.unmatched(candidates):
        for layer in leaf_layers(model):
            verdict = registry.support(layer)
            if verdict.kind != "cluster" and re.search(pattern, layer.name):
                raise ClusteringError(
                    f"cluster.number_of_clusters: pattern {pattern!r}: "
                    + registry.unsupported_message(layer, verdict.reason or "it has no weights")
                )


def run(spec: ClusterSpec, artifact: Artifact, ctx) -> Artifact:
    from keras_compress.clustering import strip_clustering
    from keras_compress.clustering.cluster import cluster_layers, clusterable_layer_names

    model = artifact.model
    candidates = clusterable_layer_names(model)
    _refuse_named_unclusterable(spec, model, candidates)
    targets = spec.number_of_clusters.select(candidates, "cluster.number_of_clusters", f"clusterable layer of {artifact.name!r}")
    sparse = "prune" in artifact.stages if spec.preserve_sparsity is None else spec.preserve_sparsity
    teacher = f", distilled from {spec.teacher}" if spec.teacher else ""
    ctx.say(f"[cluster] {artifact.name}: {spec.number_of_clusters} clusters ({spec.init}, {len(targets)} layers"
            f"{', zeros preserved' if sparse else ''}), {spec.epochs} epochs{teacher}")
    wrapped = cluster_layers(model, targets, cluster_centroids_init=spec.init.upper(), preserve_sparsity=sparse,
                             cluster_per_channel=spec.cluster_per_channel)
    fit(wrapped, ctx, spec, label=artifact.name, teacher=spec.teacher)
    return artifact.evolve(strip_clustering(wrapped), stage="cluster", clusters=targets)


STAGE = Stage("cluster", ClusterSpec, run)
