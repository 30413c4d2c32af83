"""Recipes: a compression run as data (YAML / JSON), run by :func:`compress`.

``keras-compress run RECIPE.yaml`` and :func:`compress` load a recipe (a file,
or the name of a bundled one), then run it through
:mod:`keras_compress.pipeline`: every variant's chain of stages (build, train,
distil, prune, prune_filters, qat, ...), every output converted and measured,
and the summary, table and report written under one output folder.

Bundled recipes (run offline on 2 cores):

- ``demo``: what ``keras-compress demo`` runs: a digits CNN, its PTQ modes,
  QAT, 80%-sparse, 50%-filter-pruned, and a 16x smaller student from scratch
  and distilled.
- ``digits_prune_qat``: a digits CNN pruned to 50% then QAT, float32 and int8.
- ``shapes_distill``: a 7x smaller shapes CNN distilled from a teacher, against
  the same student trained from scratch, then pruned to 50% and QAT (still distilled).

Modules: ``recipe`` (dataclasses and validation), ``files`` (reading),
``overrides`` (dotted-key changes), ``builders`` (models by name).

Example:
    >>> from keras_compress.recipes import load_recipe
    >>> [v.name for v in load_recipe("shapes_distill").variants]
    ['teacher', 'student_scratch', 'student_distilled', 'student_distilled_pruned', 'student_distilled_pruned_qat']
    >>> rows = compress("shapes_distill", out_dir="runs/shapes")   # doctest: +SKIP
"""

from keras_compress.recipes.builders import BUILDERS, build_model
from keras_compress.recipes.recipe import (
    ConvertDefaults,
    DatasetSpec,
    Recipe,
    StageCall,
    Variant,
    apply_overrides,
    bundled_recipes,
    load_recipe,
)

__all__ = [
    "compress",
    "run_recipe",
    "load_recipe",
    "bundled_recipes",
    "apply_overrides",
    "Recipe",
    "Variant",
    "StageCall",
    "DatasetSpec",
    "ConvertDefaults",
    "build_model",
    "BUILDERS",
]


def __getattr__(name: str):
    # compress / run_recipe live in the pipeline, which imports this package: load them on first use.
    if name in ("compress", "run_recipe"):
        from keras_compress.pipeline import run

        return getattr(run, name)
    raise AttributeError(f"module 'keras_compress.recipes' has no attribute {name!r}")
