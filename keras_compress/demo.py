"""`keras-compress demo`: the bundled ``demo`` recipe, run by the same pipeline as ``keras-compress run``.

On :func:`~keras_compress.datasets.load_digits` it trains a small CNN baseline,
then variants that branch off it (float32 / float16 / dynamic / int8 PTQ,
QAT, 80%-sparse, 50%-filter-pruned) and a 16x smaller student from scratch and
distilled; converts every one, evaluates each through the `edgetpu` runtime
(CPU, XNNPACK, 1 thread) and prints one table: accuracy, file size, gzip size
and median latency, with the CPU's int8-relevant features. The recipe is
``keras_compress/recipes/demo.yaml``; models, ``.tflite`` files,
``summary.json``, ``summary.md``, ``run.json`` and ``report.html`` go to the
output folder.

Example:
    >>> from keras_compress.demo import run_demo
    >>> rows = run_demo("demo_out")                               # doctest: +SKIP
    >>> rows = run_demo("demo_out", epochs=2, variants=["baseline"])  # a quick look  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["run_demo", "build_demo_cnn", "DEMO_EPOCHS"]

#: The baseline's epochs in the demo recipe; ``--epochs N`` scales every stage by N / 12.
DEMO_EPOCHS = 12


def build_demo_cnn(input_shape=(32, 32, 1), num_classes: int = 10, width: int = 32, name: str = "demo_cnn"):
    """The demo's baseline architecture (builder ``cnn`` with ``width / 32`` and dropout 0.2), untrained.

    Example:
        >>> build_demo_cnn().count_params()
        224458
    """
    from keras_compress.recipes.builders import build_model

    return build_model("cnn", tuple(input_shape), num_classes, width=width / 32, name=name, dropout=0.2)


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    epochs: int = DEMO_EPOCHS,
    seed: int = 0,
    variants: Sequence[str] | None = None,
    report: bool = True,
    verbose: bool = True,
    progress=None,
) -> list[dict]:
    """Run the demo recipe; returns the rows (also written to ``out_dir/summary.json``).

    Args:
        out_dir: where models, ``summary.json`` and the report go.
        epochs: the baseline's training epochs; every other stage's epochs scale
            with it (``epochs / 12``, at least 1 each).
        seed: the run's seed.
        variants: run only these variants of the recipe (default all), e.g.
            ``["baseline"]`` for the four PTQ rows.
        report: also write ``out_dir/report.html``.
        verbose: progress lines (stderr) and the table (stdout).
        progress: where progress lines go (see :func:`keras_compress.pipeline.run.compress`).
    """
    from keras_compress.pipeline.run import compress

    overrides = {"seed": seed, "report.html": report}
    scale = epochs / DEMO_EPOCHS if epochs != DEMO_EPOCHS else None
    return compress("demo", out_dir, overrides=overrides, variants=variants, epochs_scale=scale, verbose=verbose,
                    progress=progress)
