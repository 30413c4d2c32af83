"""Run a recipe end to end: data, teacher, student (distil / prune / QAT), convert, measure, report.

Stages, each printed as a ``[stage]`` progress line on stderr:

1. ``data``: :func:`keras_compress.datasets.load_dataset`.
2. ``teacher``: build and train (or load) the teacher; saved as ``models/teacher.keras``.
3. ``scratch``: with distillation and ``compare_scratch``, the student trained on
   labels alone, same seed and epochs (the baseline distillation must beat).
4. ``student``: the student trained from the labels, or distilled from the teacher.
5. ``prune``: magnitude pruning while fine-tuning (distilled if distillation is on),
   then :func:`~keras_compress.pruning.strip_pruning`.
6. ``qat``: :func:`~keras_compress.quantization.quantize_model` with the pruning
   zeros preserved, fine-tuned (distilled if distillation is on).
7. ``convert`` / ``measure``: every model of the run in every mode of the recipe
   (a QAT model in int8 only), via :func:`keras_compress.convert.to_tflite`
   and :func:`keras_compress.summary.measure_tflite`.

Output folder layout::

    recipe.json            the validated recipe as run
    models/*.keras         teacher, student_scratch, student, student_pruned, student_qat ...
    tflite/*.tflite        <variant>_<mode>.tflite
    summary.json / .md     the table rows (keras_compress.summary)
    run.json               timings, Keras accuracies, machine

Example:
    >>> from keras_compress.recipes import compress
    >>> rows = compress("shapes_distill", out_dir="runs/shapes")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from keras_compress.errors import ConfigError
from keras_compress.recipes.recipe import Recipe, load_recipe

__all__ = ["compress", "run_recipe"]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _epoch_logger(prefix: str, epochs: int):
    import keras

    class EpochLog(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            acc = logs.get("accuracy", logs.get("sparse_categorical_accuracy"))
            loss = logs.get("total_loss", logs.get("loss"))
            parts = [f"  {prefix} epoch {epoch + 1}/{epochs}"]
            if loss is not None:
                parts.append(f"loss {float(loss):.4f}")
            if acc is not None:
                parts.append(f"train acc {float(acc):.2%}")
            parts.append(f"{time.perf_counter() - self.t0:.0f} s")
            _progress(", ".join(parts))

    return EpochLog()


def _classifier_loss(model):
    import keras

    from keras_compress.distillation import outputs_probabilities

    return keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))


def _fit(model, data, *, epochs, batch_size, learning_rate, teacher=None, recipe: Recipe, label: str, callbacks=()):
    """Fit ``model`` on labels, or distil it from ``teacher`` when given."""
    import keras

    (x_train, y_train), _ = data
    cbs = list(callbacks) + [_epoch_logger(label, epochs)]
    if teacher is None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=_classifier_loss(model), metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, callbacks=cbs, verbose=0)
        return model
    from keras_compress.distillation import Distiller, LogitsDistillation

    d = recipe.distillation
    distiller = Distiller(
        teacher,
        model,
        LogitsDistillation(d.temperature, standardize=d.standardize),
        student_loss_weight=d.alpha,
        temperature=d.temperature,
        standardize=d.standardize,
        features=list(d.features),
        feature_weight=d.feature_weight,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"])
    distiller.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, callbacks=cbs, verbose=0)
    return model


def _accuracy(model, data) -> float:
    _, (x_test, y_test) = data
    scores = model.predict(x_test, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(scores, -1) == y_test))


def _kernel_sparsity(model) -> float:
    """Fraction of exact zeros over all kernels (conv, dense) of ``model``, wrappers (pruning, QAT) included."""
    total = zeros = 0
    for w in model.weights:
        if w.path.split("/")[-1] in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            v = np.asarray(w.numpy())
            total += v.size
            zeros += int(v.size - np.count_nonzero(v))
    return zeros / total if total else 0.0


def _build(spec, recipe: Recipe, input_shape, num_classes, name):
    from keras_compress.recipes.builders import build_model

    ref = spec.model if not spec.model.endswith(".keras") else recipe.resolve_path(spec.model)
    return build_model(ref, input_shape, num_classes, width=spec.width, name=name)


def _save(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def compress(
    recipe: "str | os.PathLike | Mapping | Recipe",
    out_dir: str | os.PathLike | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    verbose: bool = True,
) -> list[dict]:
    """Run a recipe end to end; returns the summary rows (also in ``out_dir/summary.json``).

    Args:
        recipe: a recipe file (YAML/JSON), a bundled recipe name
            (``"digits_prune_qat"``, ``"shapes_distill"``), a dict or a :class:`Recipe`.
        out_dir: output folder; default the recipe's ``output_dir``, else ``runs/<name>``.
        overrides: dotted-key changes applied before validation, e.g.
            ``{"student.epochs": 1, "dataset.options": {"n_train": 200}}``.
        verbose: print progress lines (stderr) and the final table (stdout).

    Returns:
        One row per converted model (see :mod:`keras_compress.summary`), with
        ``variant``, ``mode``, ``accuracy``, ``keras_accuracy``, sizes, latency,
        ``sparsity``, ``params`` and ``file``.

    Raises:
        ConfigError: a bad recipe (field, allowed values and value found in the message).
        CompressError: a stage failed (dataset, pruning, quantization, conversion).

    Example:
        >>> rows = compress("digits_prune_qat", overrides={"student.epochs": 1})  # doctest: +SKIP
    """
    import keras

    from keras_compress.datasets import load_dataset
    from keras_compress.summary import format_table, write_summary

    say = _progress if verbose else (lambda msg: None)
    r = load_recipe(recipe, overrides)
    out = Path(out_dir if out_dir is not None else (r.output_dir or os.path.join("runs", r.name)))
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "tflite").mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(r.to_dict(), indent=2))
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    keras_acc: dict[str, float] = {}

    def tick(stage, t0):
        timings[stage] = round(time.perf_counter() - t0, 1)

    # 1. data
    t0 = time.perf_counter()
    ds_name = r.dataset.name if r.dataset.name in ("digits", "shapes", "mnist", "fashion_mnist", "cifar10") else r.resolve_path(r.dataset.name)
    try:
        data = load_dataset(ds_name, **dict(r.dataset.options))
    except TypeError as e:
        raise ConfigError(f"dataset.options: not accepted by the {r.dataset.name!r} loader: {e}") from None
    (x_train, y_train), (x_test, y_test) = data
    input_shape = tuple(x_train.shape[1:])
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    say(f"[data] {r.dataset.name}: {len(x_train)} train / {len(x_test)} test, {input_shape}, {num_classes} classes")
    tick("data", t0)

    models: dict[str, Any] = {}  # variant -> model, in table order

    # 2. teacher
    teacher = None
    if r.teacher is not None:
        t0 = time.perf_counter()
        keras.utils.set_random_seed(r.seed)
        teacher = _build(r.teacher, r, input_shape, num_classes, "teacher")
        say(f"[teacher] {r.teacher.model} x{r.teacher.width}: {teacher.count_params():,} parameters, {r.teacher.epochs} epochs")
        if r.teacher.epochs > 0:
            _fit(teacher, data, epochs=r.teacher.epochs, batch_size=r.teacher.batch_size,
                 learning_rate=r.teacher.learning_rate, recipe=r, label="teacher")
        keras_acc["teacher"] = _accuracy(teacher, data)
        say(f"  teacher Keras accuracy {keras_acc['teacher']:.2%}")
        _save(teacher, out / "models" / "teacher.keras")
        models["teacher"] = teacher
        tick("teacher", t0)
    distil_from = teacher if r.distillation.enabled else None

    s = r.student

    # 3. student from scratch (baseline for distillation)
    if r.distillation.enabled and r.distillation.compare_scratch:
        t0 = time.perf_counter()
        keras.utils.set_random_seed(r.seed + 1)
        scratch = _build(s, r, input_shape, num_classes, "student_scratch")
        say(f"[scratch] student {s.model} x{s.width} on labels only: {scratch.count_params():,} parameters, {s.epochs} epochs")
        if s.epochs > 0:
            _fit(scratch, data, epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate, recipe=r, label="scratch")
        keras_acc["student_scratch"] = _accuracy(scratch, data)
        say(f"  scratch student Keras accuracy {keras_acc['student_scratch']:.2%}")
        _save(scratch, out / "models" / "student_scratch.keras")
        models["student_scratch"] = scratch
        tick("scratch", t0)

    # 4. student (distilled or on labels)
    t0 = time.perf_counter()
    keras.utils.set_random_seed(r.seed + 1)
    student = _build(s, r, input_shape, num_classes, "student")
    name = "student_distilled" if distil_from is not None else "student"
    how = f"distilled from the teacher (T={r.distillation.temperature}, alpha={r.distillation.alpha}, standardize={r.distillation.standardize})" if distil_from is not None else "on labels"
    say(f"[student] {s.model} x{s.width}, {how}: {student.count_params():,} parameters, {s.epochs} epochs")
    if s.epochs > 0:
        _fit(student, data, epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
             teacher=distil_from, recipe=r, label=name)
    keras_acc[name] = _accuracy(student, data)
    say(f"  {name} Keras accuracy {keras_acc[name]:.2%}")
    _save(student, out / "models" / f"{name}.keras")
    models[name] = student
    tick("student", t0)

    # 5. pruning
    if r.pruning.enabled:
        t0 = time.perf_counter()
        from keras_compress import pruning

        p = r.pruning
        steps = p.epochs * int(np.ceil(len(x_train) / s.batch_size))
        if p.schedule == "polynomial":
            end = max(p.frequency, (2 * steps // 3) // p.frequency * p.frequency)
            schedule = pruning.PolynomialDecay(p.initial_sparsity, p.target_sparsity, begin_step=0, end_step=end, frequency=p.frequency)
        else:
            schedule = pruning.ConstantSparsity(p.target_sparsity, begin_step=0, frequency=p.frequency)
        name = name + "_pruned"
        say(f"[prune] to {p.target_sparsity:.0%} sparsity ({p.schedule}), {p.epochs} epochs")
        wrapped = pruning.prune_low_magnitude(student, pruning_schedule=schedule)
        _fit(wrapped, data, epochs=p.epochs, batch_size=s.batch_size, learning_rate=p.learning_rate,
             teacher=distil_from, recipe=r, label=name, callbacks=[pruning.UpdatePruningStep()])
        student = pruning.strip_pruning(wrapped)
        keras_acc[name] = _accuracy(student, data)
        say(f"  {name} Keras accuracy {keras_acc[name]:.2%}, kernel sparsity {_kernel_sparsity(student):.1%}")
        _save(student, out / "models" / f"{name}.keras")
        models[name] = student
        tick("prune", t0)

    # 6. QAT
    if r.qat.enabled:
        t0 = time.perf_counter()
        from keras_compress.quantization import quantize_model

        name = name + "_qat"
        say(f"[qat] quantization-aware fine-tuning, {r.qat.epochs} epochs" + (" (zeros preserved)" if r.pruning.enabled else ""))
        keras.utils.set_random_seed(r.seed + 2)
        qat = quantize_model(student, preserve_sparsity=r.pruning.enabled)
        _fit(qat, data, epochs=r.qat.epochs, batch_size=s.batch_size, learning_rate=r.qat.learning_rate,
             teacher=distil_from, recipe=r, label=name)
        student = qat
        keras_acc[name] = _accuracy(student, data)
        say(f"  {name} Keras (fake-quant) accuracy {keras_acc[name]:.2%}, kernel sparsity {_kernel_sparsity(student):.1%}")
        _save(student, out / "models" / f"{name}.keras")
        models[name] = student
        tick("qat", t0)

    # 7. convert and measure
    from keras_compress.convert import is_qat_model
    from keras_compress.summary import measure_tflite

    t0 = time.perf_counter()
    rows: list[dict] = []
    calib = x_train[: r.convert.calibration_samples]
    target = r.convert.target
    for variant, model in models.items():
        qat_model = is_qat_model(model)
        for mode in r.convert.modes:
            if qat_model and mode != "int8":
                say(f"[convert] {variant}: skipping {mode} (a QAT model converts to int8)")
                continue
            say(f"[convert] {variant} -> {mode}" + (f" for {target}" if target != "cpu" else ""))
            blob = _convert(model, out / "tflite" / f"{variant}_{mode}.tflite", mode, calib, r, qat_model)
            row = measure_tflite(
                variant,
                blob,
                x_test,
                y_test,
                runs=r.convert.latency_runs,
                mode=mode,
                keras_accuracy=keras_acc.get(variant),
                sparsity=_kernel_sparsity(model),
                params=int(model.count_params()),
                file=f"tflite/{variant}_{mode}.tflite",
            )
            if mode == "int8":
                from edgetpu.compat import check

                row["edgetpu_mapped"] = check(blob).fraction_mapped
            rows.append(row)
            say(f"  {variant} {mode}: accuracy {row['accuracy']:.2%}, {row['size_bytes'] / 1024:.1f} KiB, {row['latency_ms']:.3f} ms")
    tick("convert", t0)

    meta = {
        "recipe": r.name,
        "recipe_file": r.source,
        "seconds": round(time.perf_counter() - t_start, 1),
        "timings": timings,
        "keras_accuracy": keras_acc,
        "machine": _machine(),
    }
    write_summary(rows, out, meta=meta)
    if verbose:
        print(format_table(rows), flush=True)
    say(f"[done] {meta['seconds']:.0f} s; models, .tflite files and summary.json in {out}/")
    return rows


def _convert(model, path, mode, calib, r: Recipe, qat_model: bool) -> bytes:
    """to_tflite with the recipe's settings; a QAT model converts to int8 from its own ranges."""
    from keras_compress.convert import to_tflite

    needs_calib = mode == "int16x8" or (mode == "int8" and not qat_model)
    return to_tflite(
        model,
        path,
        quantization=mode,
        representative_data=calib if needs_calib else None,
        num_calibration_samples=r.convert.calibration_samples,
        input_type=r.convert.input_type if mode == "int8" else None,
        target=r.convert.target if r.convert.target != "cpu" else None,
        verbose=False,
    )


def _machine() -> dict:
    try:
        from keras_compress.demo import machine_description

        return machine_description()
    except Exception:  # noqa: BLE001 - informative only
        return {"cores": os.cpu_count()}


def run_recipe(path: "str | os.PathLike", out_dir: str | os.PathLike | None = None, *, overrides: Mapping[str, Any] | None = None) -> list[dict]:
    """What ``keras-compress run RECIPE`` calls: :func:`compress` on a file or bundled recipe name."""
    return compress(path, out_dir, overrides=overrides)
