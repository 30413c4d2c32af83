"""Recipes: one validated config runs the whole pipeline, from data to int8 TFLite and a table.

``keras-compress run RECIPE.yaml`` and :func:`compress` load a recipe (YAML or
JSON file, or the name of a bundled one), train or load the teacher, train the
student (distilled, pruned and quantization-aware trained as the recipe says),
strip it, convert every model to TFLite, measure each one, and save every
artifact and the summary table under one output folder.

Bundled recipes (run offline on 2 cores in a few minutes each):

- ``digits_prune_qat``: a digits CNN pruned to 50% then QAT, float32 and int8.
- ``shapes_distill``: a 7x smaller shapes CNN distilled from a teacher, against
  the same student trained from scratch, then pruned to 50% and QAT.

Modules: ``recipe`` (dataclasses and validation), ``builders`` (models by
name), ``pipeline`` (:func:`compress`).

Example:
    >>> from keras_compress.recipes import load_recipe
    >>> load_recipe("shapes_distill").distillation.enabled
    True
    >>> rows = compress("shapes_distill", out_dir="runs/shapes")   # doctest: +SKIP
"""

from keras_compress.recipes.builders import BUILDERS, build_model
from keras_compress.recipes.pipeline import compress, run_recipe
from keras_compress.recipes.recipe import (
    ConvertSpec,
    DatasetSpec,
    DistillationSpec,
    ModelSpec,
    PruningSpec,
    QATSpec,
    Recipe,
    bundled_recipes,
    load_recipe,
)

__all__ = [
    "compress",
    "run_recipe",
    "load_recipe",
    "bundled_recipes",
    "Recipe",
    "DatasetSpec",
    "ModelSpec",
    "DistillationSpec",
    "PruningSpec",
    "QATSpec",
    "ConvertSpec",
    "build_model",
    "BUILDERS",
]
