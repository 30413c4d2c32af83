"""``distil``: fit distilled from a teacher variant (the recipe's ``distillation`` settings) and the labels.

Recipe form::

    - distil: {teacher: baseline, epochs: 12}

Example:
    >>> from keras_compress.pipeline.spec import build_spec
    >>> build_spec(DistilSpec, {"teacher": "baseline", "epochs": 3}, "distil").teacher
    'baseline'
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import FitSpec, fit
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import file_name, setting

__all__ = ["DistilSpec", "run", "STAGE"]


@dataclass(frozen=True, kw_only=True)
class DistilSpec(FitSpec):
    """The teacher (a variant defined earlier in the recipe) and the training schedule."""

    teacher: str = setting(file_name)


def run(spec: DistilSpec, artifact: Artifact, ctx) -> Artifact:
    d = ctx.distillation
    ctx.say(
        f"[distil] {artifact.name}: from {spec.teacher} (T={d.temperature}, alpha={d.alpha}, "
        f"standardize={d.standardize}), {spec.epochs} epochs"
    )
    fit(artifact.model, ctx, spec, label=artifact.name, teacher=spec.teacher)
    return artifact.evolve(stage="distil")


STAGE = Stage("distil", DistilSpec, run)
