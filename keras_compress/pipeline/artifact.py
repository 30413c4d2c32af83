"""The :class:`Artifact`: what a stage takes and returns.

Example:
    >>> from keras_compress.pipeline.artifact import Artifact
    >>> a = Artifact("student", model=None)
    >>> b = a.evolve("a model", stage="build", params=14266)
    >>> b.model, b.meta["stages"], b.meta["params"], a.meta
    ('a model', ('build',), 14266, {})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Artifact"]

_KEEP = object()


@dataclass(frozen=True)
class Artifact:
    """One model on its way through a run.

    Attributes:
        name: the variant (or, after conversion, the table row) it belongs to.
        model: a ``keras.Model`` between stages that train or transform it,
            ``bytes`` (a .tflite flatbuffer) after ``convert``, ``None``
            before a source stage (``build``).
        meta: what is known about it, as plain data. Keys the pipeline uses:
            ``stages`` (names of the stages applied since the root, in order),
            ``keras_accuracy``, ``sparsity``, ``params``, ``variant``,
            ``mode``, ``file`` (relative to the run folder), ``row``.
    """

    name: str
    model: Any = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def evolve(self, model: Any = _KEEP, *, name: str | None = None, stage: str | None = None, **meta: Any) -> "Artifact":
        """A new artifact: ``model`` replaced (if given), ``meta`` updated, ``stage`` appended to ``meta["stages"]``."""
        merged = dict(self.meta)
        merged.update(meta)
        if stage is not None:
            merged["stages"] = (*self.meta.get("stages", ()), stage)
        return Artifact(name or self.name, self.model if model is _KEEP else model, merged)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages applied since the root of its chain."""
        return tuple(self.meta.get("stages", ()))
