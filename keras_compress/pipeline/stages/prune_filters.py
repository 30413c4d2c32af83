"""``prune_filters``: remove a fraction of the conv filters (a physically smaller model), then fine-tune.

``fraction`` is one value for every conv layer (Conv1D/2D, SeparableConv) or
a per-layer map ``{regex: fraction or null}``; layers after a shrunk one
shrink to match. Layers with different fractions are shrunk one group after
the other. With a ``teacher``, the fine-tuning is distilled.

Recipe form::

    - prune_filters: {fraction: 0.5, epochs: 8}

Example:
    >>> PruneFiltersSpec().fraction.uniform
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import FitSpec, fit
from keras_compress.pipeline.layermap import LayerMap
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import file_name, number, optional, per_layer, setting

__all__ = ["PruneFiltersSpec", "run", "STAGE"]


@dataclass(frozen=True, kw_only=True)
class PruneFiltersSpec(FitSpec):
    """Fraction of filters removed (one, or per layer), the fine-tuning schedule, an optional teacher."""

    fraction: LayerMap = setting(per_layer(number(0.0, 1.0, lo_open=True, hi_open=True)), LayerMap.of(0.5))
    teacher: str | None = setting(optional(file_name), None)


def run(spec: PruneFiltersSpec, artifact: Artifact, ctx) -> Artifact:
    from keras_compress.pruning import prune_filters
    from keras_compress.pruning.recipes import conv_layer_names

    model = artifact.model
    fractions = spec.fraction.select(conv_layer_names(model), "prune_filters.fraction", f"conv layer of {artifact.name!r}")
    groups: dict[float, list[str]] = {}
    for name, fraction in fractions.items():
        groups.setdefault(fraction, []).append(name)
    for fraction, names in groups.items():
        model = prune_filters(model, fraction, layers=names)
    teacher = f", distilled from {spec.teacher}" if spec.teacher else ""
    ctx.say(f"[prune_filters] {artifact.name}: {spec.fraction} of the filters of {len(fractions)} conv layers removed "
            f"({artifact.model.count_params():,} -> {model.count_params():,} parameters), {spec.epochs} epochs{teacher}")
    fit(model, ctx, spec, label=artifact.name, teacher=spec.teacher)
    return artifact.evolve(model, stage="prune_filters")


STAGE = Stage("prune_filters", PruneFiltersSpec, run)
