"""``train``: fit on the labels (Adam, sparse categorical cross-entropy).

Recipe form::

    - train: {epochs: 12, batch_size: 32, learning_rate: 0.001}

Example:
    >>> TrainSpec().epochs, TrainSpec().learning_rate
    (10, 0.001)
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import FitSpec, fit
from keras_compress.pipeline.registry import Stage

__all__ = ["TrainSpec", "run", "STAGE"]


@dataclass(frozen=True, kw_only=True)
class TrainSpec(FitSpec):
    """Epochs, batch size and learning rate of training on the labels."""


def run(spec: TrainSpec, artifact: Artifact, ctx) -> Artifact:
    ctx.say(f"[train] {artifact.name}: {spec.epochs} epochs on the labels")
    fit(artifact.model, ctx, spec, label=artifact.name)
    return artifact.evolve(stage="train")


STAGE = Stage("train", TrainSpec, run)
