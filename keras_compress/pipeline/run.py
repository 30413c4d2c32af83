"""Running stages: one stage, one chain, one variant, a whole recipe (:func:`compress`).

Example:
    >>> from keras_compress.pipeline import compress
    >>> rows = compress("digits_prune_qat", out_dir="runs/digits")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from keras_compress.errors import ConfigError
from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.context import Context
from keras_compress.pipeline.registry import Stage, get_stage
from keras_compress.progress import Progress

__all__ = ["compress", "run_recipe", "run_stage", "run_chain", "run_variant", "open_run", "describe_model"]


def _kind(artifact: Artifact | None) -> str:
    if artifact is None or artifact.model is None:
        return "none"
    return "tflite" if isinstance(artifact.model, (bytes, bytearray)) else "keras"


def run_stage(stage: str | Stage, spec: Any, artifact: Artifact | None, ctx: Context) -> Artifact:
    """Run one stage on ``artifact`` (checking it is the kind the stage takes), timed into ``ctx.timings``.

    Args:
        stage: a registered stage name or a :class:`~keras_compress.pipeline.registry.Stage`.
        spec: the stage's spec (``None``: its defaults).
        artifact: what the stage takes (an artifact whose model is ``None`` for a source stage).
        ctx: the run.
    """
    stage = get_stage(stage) if isinstance(stage, str) else stage
    spec = stage.spec() if spec is None else spec
    if stage.takes != "run" and _kind(artifact) != stage.takes:
        raise ConfigError(f"stage {stage.name!r} takes a {stage.takes} model; {artifact.name if artifact else 'the run'} "
                          f"holds {_kind(artifact)}")
    t0 = time.perf_counter()
    out = stage.run(spec, artifact, ctx)
    key = f"{artifact.name}/{stage.name}" if artifact is not None else stage.name
    ctx.timings[key] = round(ctx.timings.get(key, 0.0) + time.perf_counter() - t0, 1)
    return out


def run_chain(calls: Sequence[Any], artifact: Artifact, ctx: Context) -> Artifact:
    """Run ``(stage, spec)`` pairs (or objects with ``.stage`` and ``.spec``) one after the other.

    Before stage ``k`` of the chain, counted from the root of ``artifact``'s
    lineage (``artifact.stages``), the random generators are seeded with
    ``ctx.seed + k`` (:meth:`Context.seed_random`).
    """
    for call in calls:
        name, spec = (call.stage, call.spec) if hasattr(call, "stage") else call
        ctx.seed_random(len(artifact.stages))
        artifact = run_stage(name, spec, artifact, ctx)
    return artifact


def describe_model(artifact: Artifact, ctx: Context) -> Artifact:
    """Keras accuracy, sparsity and parameter count of a variant's finished model, saved as ``models/<name>.keras``.

    ``params`` counts trainable weights: a QAT model's masks and range statistics are not parameters.
    """
    import numpy as np

    from keras_compress.pipeline.fit import keras_accuracy
    from keras_compress.pruning import overall_sparsity

    model = artifact.model
    acc = keras_accuracy(model, ctx.x_test, ctx.y_test)
    sparsity = overall_sparsity(model)
    params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    ctx.say(f"  {artifact.name}: Keras accuracy {acc:.2%}, {params:,} parameters, sparsity {sparsity:.1%}")
    ctx.folder.save_model(f"models/{artifact.name}.keras", model)
    return artifact.evolve(keras_accuracy=acc, sparsity=sparsity, params=params)


def run_variant(variant, outputs: Sequence[Any], ctx: Context, measure: Any = None) -> Artifact:
    """One variant: its chain (from ``ctx.artifacts[variant.source]`` or nothing), then each output converted and measured."""
    if variant.source is not None:
        start = ctx.artifacts[variant.source].evolve(name=variant.name)
    else:
        start = Artifact(variant.name)
    artifact = describe_model(run_chain(variant.stages, start, ctx), ctx)
    ctx.artifacts[variant.name] = artifact
    for spec in outputs:
        run_chain([("convert", spec), ("measure", measure)], artifact, ctx)
    return artifact


def _load_data(recipe, ctx_say: Callable[[str], None]):
    from keras_compress.datasets import DATASET_NAMES, load_dataset

    ds = recipe.dataset
    source = ds.name if ds.name in DATASET_NAMES else recipe.resolve_path(ds.name)
    try:
        data = load_dataset(source, **dict(ds.options))
    except TypeError as e:
        raise ConfigError(f"dataset.options: not accepted by the {ds.name!r} loader: {e}") from None
    (x, _), (xt, _) = data
    ctx_say(f"[data] {ds.name}: {len(x)} train / {len(xt)} test, {tuple(x.shape[1:])}")
    return data


def open_run(recipe, out_dir: str | os.PathLike | None = None, *, progress: Callable[[str], None] | None = None,
             show_table: bool = True) -> Context:
    """The context of a recipe's run: output folder prepared (an earlier run's files removed), data loaded."""
    from keras_compress.machine import machine_description
    from keras_compress.pipeline.rundir import RunFolder

    say = progress or Progress()
    out = Path(out_dir if out_dir is not None else (recipe.output_dir or os.path.join("runs", recipe.name)))
    folder = RunFolder(out, recipe.name, say)
    info = {"recipe": recipe.name, "recipe_file": recipe.source, "started": time.perf_counter(), "machine": machine_description()}
    folder.write_bytes("recipe.json", (json.dumps(recipe.to_dict(), indent=2) + "\n").encode())
    base = Path(recipe.source).parent if recipe.source else None
    return Context(data=_load_data(recipe, say), folder=folder, seed=recipe.seed, progress=say,
                   distillation=recipe.distillation, show_table=show_table, base_dir=base, info=info)


def compress(
    recipe: Any,
    out_dir: str | os.PathLike | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    verbose: bool = True,
    variants: Sequence[str] | None = None,
    epochs_scale: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Run a recipe end to end; returns the table's rows (also in ``out_dir/summary.json``).

    Args:
        recipe: a recipe file (YAML/JSON), a bundled recipe name (``"demo"``,
            ``"digits_prune_qat"``, ``"shapes_distill"``), a dict or a
            :class:`~keras_compress.recipes.Recipe`.
        out_dir: output folder; default the recipe's ``output_dir``, else ``runs/<name>``.
        overrides: dotted-key changes applied before validation, e.g.
            ``{"dataset.options": {"n_train": 200}, "variants.student.stages.1.train.epochs": 1}``.
        verbose: print progress lines (stderr) and the final table (stdout).
        variants: run only these variants (and the ones they need).
        epochs_scale: multiply every stage's epochs (at least 1 each).
        progress: where progress lines go (default: stderr when ``verbose``).

    Returns:
        One row per measured .tflite (see :mod:`keras_compress.summary`):
        ``variant``, ``mode``, ``accuracy``, sizes, latency, ``keras_accuracy``,
        ``sparsity``, ``params``, ``file`` and the Edge TPU columns of int8 rows.

    Raises:
        ConfigError: a bad recipe (field, allowed values and value found in the message).
        OutputError: the output folder cannot be used.
        CompressError: a stage failed (dataset, pruning, quantization, conversion).
    """
    from keras_compress.recipes.recipe import load_recipe

    r = load_recipe(recipe, overrides)
    r = r.select(variants) if variants else r
    r = r.scale_epochs(epochs_scale) if epochs_scale else r
    ctx = open_run(r, out_dir, progress=progress or Progress(enabled=verbose), show_table=verbose)
    for v in r.variants:
        run_variant(v, r.outputs_of(v), ctx, r.measure)
    run_stage("report", r.report, None, ctx)
    ctx.say(f"[done] {ctx.info['seconds']:.0f} s; models, .tflite files and summary.json in {ctx.folder.path}/")
    return ctx.rows


def run_recipe(path: Any, out_dir: str | os.PathLike | None = None, *, overrides: Mapping[str, Any] | None = None,
               **kwargs: Any) -> list[dict]:
    """What ``keras-compress run RECIPE`` calls: :func:`compress` on a file or bundled recipe name."""
    return compress(path, out_dir, overrides=overrides, **kwargs)
