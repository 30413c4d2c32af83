"""The stage registry: stage name -> the module that implements it.

A registry entry is one line: the stage's name as recipes write it, and its
module. The module is imported the first time the stage is used (so loading
a recipe does not import TensorFlow), and provides ``STAGE``, a
:class:`Stage`. Nothing registers itself on import: this table is the list.

Example:
    >>> from keras_compress.pipeline.registry import get_stage, stage_names
    >>> stage_names(takes="keras", gives="keras")     # the stages a recipe's chains may list after build
    ['train', 'distil', 'prune', 'prune_filters', 'qat', 'decompose', 'cluster']
    >>> s = get_stage("prune")
    >>> s.takes, s.gives, s.spec.__name__
    ('keras', 'keras', 'PruneSpec')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from keras_compress.errors import ConfigError
from keras_compress.pipeline.spec import choices_text

__all__ = ["Stage", "STAGES", "get_stage", "stage_names", "KINDS"]

#: What a stage takes and gives: nothing (a source), a Keras model, .tflite bytes, the whole run.
KINDS = ("none", "keras", "tflite", "run")


@dataclass(frozen=True)
class Stage:
    """One stage.

    Attributes:
        name: the name recipes use.
        spec: its spec dataclass (frozen, fields declared with
            :func:`keras_compress.pipeline.spec.setting`).
        run: ``run(spec, artifact, ctx) -> Artifact``.
        takes: the model kind of the artifact it takes (:data:`KINDS`).
        gives: the model kind of the artifact it returns.
    """

    name: str
    spec: type
    run: Callable[[Any, Any, Any], Any]
    takes: str = "keras"
    gives: str = "keras"


#: Stage name -> module. Model stages (keras -> keras) may appear in a recipe's
#: variant chains; ``build`` starts a chain; ``convert`` and ``measure`` run for
#: each of a variant's outputs; ``report`` once at the end of the run.
STAGES: dict[str, str] = {
    "build": "keras_compress.pipeline.stages.build",
    "train": "keras_compress.pipeline.stages.train",
    "distil": "keras_compress.pipeline.stages.distil",
    "prune": "keras_compress.pipeline.stages.prune",
    "prune_filters": "keras_compress.pipeline.stages.prune_filters",
    "qat": "keras_compress.pipeline.stages.qat",
    "decompose": "keras_compress.pipeline.stages.decompose",
    "cluster": "keras_compress.pipeline.stages.cluster",
    "convert": "keras_compress.pipeline.stages.convert",
    "measure": "keras_compress.pipeline.stages.measure",
    "report": "keras_compress.pipeline.stages.report",
}


def get_stage(name: str) -> Stage:
    """The :class:`Stage` registered as ``name``.

    Raises:
        ConfigError: no such stage (the message lists the registered ones).
    """
    if name not in STAGES:
        raise ConfigError(f"{name!r}: unknown stage; expected one of {choices_text(STAGES)}")
    stage = importlib.import_module(STAGES[name]).STAGE
    if stage.name != name:
        raise ConfigError(f"{STAGES[name]}: declares stage {stage.name!r}, registered as {name!r}")
    return stage


def stage_names(takes: str | None = None, gives: str | None = None) -> list[str]:
    """Registered stage names, in registry order; only those taking / giving the given kinds."""
    return [n for n in STAGES if (takes is None or get_stage(n).takes == takes) and (gives is None or get_stage(n).gives == gives)]
