"""``prune``: magnitude pruning while fine-tuning, per-layer targets, then ``strip_pruning``.

Sparsity follows the one ramp of :func:`keras_compress.pruning.recipes.pruning_ramp`
(``PolynomialDecay`` from ``initial_sparsity`` over the first 70% of the steps).
``target_sparsity`` is one value for every prunable layer (Dense, Conv,
Embedding, ...) or a per-layer map ``{regex: sparsity or null}``; with a
``teacher``, the fine-tuning is distilled.

Recipe form::

    - prune: {target_sparsity: 0.8, epochs: 8}
    - prune: {target_sparsity: {"conv": 0.5, "^fc$": 0.9}, epochs: 4, teacher: teacher}

Example:
    >>> from keras_compress.pipeline.spec import build_spec
    >>> spec = build_spec(PruneSpec, {"target_sparsity": {"conv": 0.5, "^fc$": 0.9}}, "prune")
    >>> spec.target_sparsity.resolve(["conv1", "fc", "logits"])
    {'conv1': 0.5, 'fc': 0.9}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import FitSpec, fit
from keras_compress.pipeline.layermap import LayerMap
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import choice, file_name, integer, number, optional, per_layer, setting

__all__ = ["PruneSpec", "run", "STAGE", "SCHEDULES"]

SCHEDULES = ("polynomial", "constant")


@dataclass(frozen=True, kw_only=True)
class PruneSpec(FitSpec):
    """Targets (one, or per layer), the ramp, the fine-tuning schedule, an optional teacher."""

    target_sparsity: LayerMap = setting(per_layer(number(0.0, 1.0, hi_open=True)), LayerMap.of(0.5))
    initial_sparsity: float = setting(number(0.0, 1.0, hi_open=True), 0.0)
    schedule: str = setting(choice(SCHEDULES), "polynomial")
    frequency: int | None = setting(optional(integer(1, 1_000_000)), None)
    epochs: int = setting(integer(1, 10_000), 3)
    learning_rate: float = setting(number(0.0, 1.0, lo_open=True), 5e-4)
    teacher: str | None = setting(optional(file_name), None)


def run(spec: PruneSpec, artifact: Artifact, ctx) -> Artifact:
    from keras_compress.pruning import UpdatePruningStep, strip_pruning
    from keras_compress.pruning.recipes import prunable_layer_names, prune_layers

    model = artifact.model
    targets = spec.target_sparsity.select(prunable_layer_names(model), "prune.target_sparsity", f"prunable layer of {artifact.name!r}")
    steps = spec.epochs * math.ceil(len(ctx.x_train) / spec.batch_size)
    teacher = f", distilled from {spec.teacher}" if spec.teacher else ""
    ctx.say(f"[prune] {artifact.name}: to {spec.target_sparsity} sparsity ({spec.schedule}, {len(targets)} layers), "
            f"{spec.epochs} epochs{teacher}")
    wrapped = prune_layers(model, targets, steps, initial_sparsity=spec.initial_sparsity, frequency=spec.frequency,
                           schedule=spec.schedule)
    fit(wrapped, ctx, spec, label=artifact.name, teacher=spec.teacher, callbacks=[UpdatePruningStep()])
    return artifact.evolve(strip_pruning(wrapped), stage="prune")


STAGE = Stage("prune", PruneSpec, run)
