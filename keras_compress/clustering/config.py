"""`CentroidInitialization` and `GradientAggregation`: tfmot's enums, with tfmot's values.

The values are the strings tfmot stores in a model's config
(``"CentroidInitialization.KMEANS_PLUS_PLUS"``), so :func:`get_init` also
accepts them, besides the enum members and their names in any case.

Example:
    >>> from keras_compress.clustering import CentroidInitialization
    >>> get_init("kmeans_plus_plus") is CentroidInitialization.KMEANS_PLUS_PLUS
    True
    >>> get_init("CentroidInitialization.LINEAR").name
    'LINEAR'
"""

from __future__ import annotations

import enum

from keras_compress.errors import ClusteringError

__all__ = ["CentroidInitialization", "GradientAggregation", "get_aggregation", "get_init"]


class CentroidInitialization(str, enum.Enum):
    """How the cluster centroids are initialized (tfmot's four methods).

    * ``LINEAR``: evenly spaced between the weights' minimum and maximum.
    * ``RANDOM``: drawn uniformly between the weights' minimum and maximum.
    * ``DENSITY_BASED``: the weights' cumulative distribution, its y axis split
      evenly; the matching x values are the centroids (more centroids where
      weights are dense).
    * ``KMEANS_PLUS_PLUS``: k-means++ seeding (TensorFlow's op, seed 9, as tfmot).
    """

    LINEAR = "CentroidInitialization.LINEAR"
    RANDOM = "CentroidInitialization.RANDOM"
    DENSITY_BASED = "CentroidInitialization.DENSITY_BASED"
    KMEANS_PLUS_PLUS = "CentroidInitialization.KMEANS_PLUS_PLUS"


class GradientAggregation(str, enum.Enum):
    """How a centroid's gradient is made from its weights' gradients (``SUM``, tfmot's default, or ``AVG``)."""

    SUM = "GradientAggregation.SUM"
    AVG = "GradientAggregation.AVG"


def _get(enum_cls, value, field: str):
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        for member in enum_cls:
            if value in (member.value, member.name) or value.upper() == member.name:
                return member
    allowed = ", ".join(m.name for m in enum_cls)
    raise ClusteringError(f"{field} must be one of {allowed} ({enum_cls.__name__}), got {value!r}")


def get_init(value) -> CentroidInitialization:
    """A :class:`CentroidInitialization` from a member, its value or its name (any case)."""
    return _get(CentroidInitialization, value, "cluster_centroids_init")


def get_aggregation(value) -> GradientAggregation:
    """A :class:`GradientAggregation` from a member, its value or its name (any case)."""
    return _get(GradientAggregation, value, "cluster_gradient_aggregation")
