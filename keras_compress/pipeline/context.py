"""The :class:`Context`: what every stage of a run shares.

Example:
    >>> import numpy as np, tempfile
    >>> from keras_compress.pipeline.context import Context
    >>> data = ((np.zeros((4, 8, 8, 1), "float32"), np.arange(4) % 2), (np.zeros((2, 8, 8, 1), "float32"), np.arange(2)))
    >>> ctx = Context.create(data, tempfile.mkdtemp(), name="doc", quiet=True)
    >>> ctx.input_shape, ctx.num_classes, ctx.folder.files
    ((8, 8, 1), 2, [])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_compress.errors import ConfigError
from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import DistillationSpec
from keras_compress.pipeline.rundir import RunFolder
from keras_compress.progress import Progress

__all__ = ["Context"]

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Context:
    """The data, output folder, seed, progress and results of one run.

    Attributes:
        data: ``((x_train, y_train), (x_test, y_test))``.
        folder: the :class:`~keras_compress.pipeline.rundir.RunFolder` files go to.
        seed: the run's seed; :meth:`seed_random` derives each stage's from it.
        progress: prints one progress line (stderr).
        distillation: how stages with a ``teacher`` distil.
        show_table: print the final table to stdout.
        base_dir: folder that relative model paths resolve against (the recipe's).
        artifacts: the finished variants, by name (teachers are looked up here).
        rows: one dict per measured .tflite model, in order.
        timings: seconds per ``variant/stage``.
        info: run-level facts for ``run.json`` (recipe, machine, ...).
    """

    data: Split
    folder: RunFolder
    seed: int = 0
    progress: Callable[[str], None] = field(default_factory=Progress)
    distillation: DistillationSpec = field(default_factory=DistillationSpec)
    show_table: bool = True
    base_dir: Path | None = None
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, data: Split, out_dir: str | os.PathLike, *, name: str = "run", seed: int = 0, quiet: bool = False, **kwargs: Any) -> "Context":
        """A context for running stages from Python: data, a fresh :class:`RunFolder`, the seed."""
        progress = Progress(enabled=not quiet)
        return cls(data=data, folder=RunFolder(out_dir, name, progress), seed=seed, progress=progress,
                   show_table=not quiet, **kwargs)

    @property
    def x_train(self) -> np.ndarray:
        return self.data[0][0]

    @property
    def y_train(self) -> np.ndarray:
        return self.data[0][1]

    @property
    def x_test(self) -> np.ndarray:
        return self.data[1][0]

    @property
    def y_test(self) -> np.ndarray:
        return self.data[1][1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(np.max(self.y_train), np.max(self.y_test))) + 1

    def say(self, message: str) -> None:
        """One progress line."""
        self.progress(message)

    def model(self, name: str):
        """The Keras model of the finished variant ``name`` (e.g. a teacher)."""
        if name not in self.artifacts:
            known = ", ".join(repr(n) for n in self.artifacts) or "none yet"
            raise ConfigError(f"{name!r}: no such finished variant in this run (finished: {known})")
        return self.artifacts[name].model

    def resolve(self, path: str) -> str:
        """``path`` if it exists from here, else relative to :attr:`base_dir`."""
        from keras_compress.recipes.files import resolve_relative

        return resolve_relative(path, self.base_dir)

    def seed_random(self, offset: int) -> None:
        """Seed Keras, NumPy and Python random generators with ``seed + offset``.

        The pipeline calls it before stage ``offset`` of a chain (counted from
        the chain's root), so two variants built and trained the same way
        (a student from scratch and the same student distilled) start from the
        same weights and see the batches in the same order.
        """
        import keras

        keras.utils.set_random_seed(self.seed + offset)
