"""`keras-compress demo`: train, compress, convert, check and run, on built-in data.

On :func:`~keras_compress.datasets.load_digits` it trains a small CNN baseline,
converts it to several TFLite variants, evaluates each through the `edgetpu`
runtime (CPU, XNNPACK, 1 thread), and prints one table: accuracy, file size,
gzip size and median latency. Models, ``summary.json`` and ``summary.md`` go
to the output folder, with ``report.html``.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable


__all__ = ["build_demo_cnn", "run_demo", "DemoContext"]

log = logging.getLogger("keras_compress")


def build_demo_cnn(input_shape=(32, 32, 1), num_classes: int = 10, width: int = 32, name: str = "demo_cnn"):
    """The demo's baseline: three conv blocks and a dense head (~225k parameters at width 32).

    Large enough that weights, not the flatbuffer's fixed overhead, dominate the
    file size (so sparsity shows in the gzip size), small enough to train in
    seconds on two cores.
    """
    import keras

    L = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = L.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(2 * width, activation="relu", name="fc1")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def compile_classifier(model, learning_rate: float = 1e-3):
    """Adam + sparse categorical cross-entropy on logits + accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class DemoContext:
    """What the variant steps share: data, the trained baseline, the output folder and the rows."""

    def __init__(self, out_dir: Path, data, baseline, epochs: int, verbose: int):
        (self.x_train, self.y_train), (self.x_test, self.y_test) = data
        self.out_dir = out_dir
        self.baseline = baseline
        self.epochs = epochs
        self.verbose = verbose
        self.rows: list[dict] = []

    def add(self, variant: str, tflite: bytes, **extra: Any) -> dict:
        """Save ``tflite`` as ``<variant>.tflite``, measure it, and add its row."""
        from edgetpu._io import atomic_write_bytes
        from keras_compress.summary import measure_tflite

        path = atomic_write_bytes(self.out_dir / f"{variant}.tflite", tflite)
        row = measure_tflite(variant, tflite, self.x_test, self.y_test, file=path.name, **extra)
        row.update(_edgetpu_columns(path, extra.get("mode")))
        self.rows.append(row)
        _progress(
            f"  {variant}: accuracy {row['accuracy']:.2%}, {row['size_bytes'] / 1024:.1f} KiB, "
            f"{row['latency_ms']:.3f} ms"
        )
        return row


def _edgetpu_columns(tflite_path: Path, mode: str | None) -> dict:
    """Edge TPU columns of an int8 row: predicted fraction of ops on the TPU, and
    the compiler's own count where ``edgetpu_compiler`` is installed."""
    if mode != "int8":
        return {}
    from edgetpu.compat import check
    from edgetpu.compiler import compile as compile_model
    from edgetpu.compiler import find_compiler
    from edgetpu.errors import CompilerError, CompilerNotFoundError

    cols: dict[str, Any] = {"edgetpu_mapped": check(tflite_path).fraction_mapped}
    try:
        find_compiler()
    except CompilerNotFoundError:
        cols["edgetpu_compiled"] = "no compiler"
        return cols
    try:
        result = compile_model(tflite_path, tflite_path.parent / "edgetpu")
        cols["edgetpu_compiled"] = f"{result.ops_on_tpu}/{result.ops_on_tpu + result.ops_on_cpu} on TPU"
        cols["edgetpu_on_chip_bytes"] = result.on_chip_bytes
    except CompilerError as e:
        cols["edgetpu_compiled"] = f"failed: {str(e).splitlines()[0][:60]}"
    return cols


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _step_baseline(ctx: DemoContext) -> None:
    from keras_compress.convert import to_tflite

    _progress("[convert] float32, float16, dynamic range, full int8 (PTQ)")
    calib = ctx.x_train[:200]
    for mode, variant in (("float32", "float32"), ("float16", "float16"), ("dynamic", "dynamic"), ("int8", "int8_ptq")):
        blob = to_tflite(ctx.baseline, quantization=mode, representative_data=calib if mode == "int8" else None, verbose=False)
        ctx.add(variant, blob, mode=mode)


def _step_pruning(ctx: DemoContext) -> None:
    """80% magnitude pruning during fine-tuning, and 50% of the conv filters removed."""
    from keras_compress.convert import to_tflite
    from keras_compress.pruning import filter_prune_and_finetune, overall_sparsity, prune_and_finetune

    epochs = max(2, ctx.epochs * 2 // 3)
    calib = ctx.x_train[:200]
    _progress(f"[prune] 80% magnitude sparsity (PolynomialDecay) while fine-tuning {epochs} epochs")
    pruned = prune_and_finetune(ctx.baseline, ctx.x_train, ctx.y_train, sparsity=0.8, epochs=epochs, batch_size=32)
    pruned.save(ctx.out_dir / "pruned.keras")
    sparsity = overall_sparsity(pruned)
    ctx.add("pruned_int8", to_tflite(pruned, quantization="int8", representative_data=calib, verbose=False), mode="int8", sparsity=sparsity)

    _progress(f"[prune] remove 50% of the conv filters, fine-tune {epochs} epochs")
    small = filter_prune_and_finetune(ctx.baseline, ctx.x_train, ctx.y_train, fraction=0.5, epochs=epochs, batch_size=32)
    small.save(ctx.out_dir / "filter_pruned.keras")
    ctx.add(
        "filter_pruned_int8",
        to_tflite(small, quantization="int8", representative_data=calib, verbose=False),
        mode="int8",
        params=int(small.count_params()),
    )


def _step_qat(ctx: DemoContext) -> None:
    """Quantization-aware fine-tuning; converts from the trained ranges, no calibration data."""
    import keras

    from keras_compress.convert import to_tflite
    from keras_compress.quantization import fine_tune_qat

    epochs = max(2, ctx.epochs // 3)
    _progress(f"[qat] quantization-aware fine-tuning, {epochs} epochs")
    qat = fine_tune_qat(
        ctx.baseline,
        ctx.x_train,
        ctx.y_train,
        epochs=epochs,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        verbose=ctx.verbose,
    )
    qat.save(ctx.out_dir / "qat.keras")
    ctx.add("qat_int8", to_tflite(qat, quantization="int8", verbose=False), mode="int8")


def _step_distillation(ctx: DemoContext) -> None:
    """A student a quarter as wide, trained from scratch and distilled from the baseline."""
    from keras_compress.convert import to_tflite
    from keras_compress.distillation import scratch_and_distilled

    shape = ctx.x_train.shape[1:]
    students = scratch_and_distilled(
        ctx.baseline,
        lambda name: build_demo_cnn(shape, width=8, name=name),
        ctx.x_train,
        ctx.y_train,
        epochs=ctx.epochs,
        verbose=ctx.verbose,
    )
    params = students["student_distilled"].count_params()
    _progress(f"[distil] student with {params:,} parameters ({ctx.baseline.count_params() / params:.0f}x fewer), scratch vs distilled")
    for name, student in students.items():
        student.save(ctx.out_dir / f"{name}.keras")
        blob = to_tflite(student, quantization="int8", representative_data=ctx.x_train[:200], verbose=False)
        ctx.add(f"{name}_int8", blob, mode="int8", params=int(params))


# Variant steps after the baseline, in table order. Each takes the context and
# adds its rows; later issues (pruning, QAT, distillation) add steps here.
STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("baseline", _step_baseline),
    ("qat", _step_qat),
    ("pruning", _step_pruning),
    ("distillation", _step_distillation),
]


def machine_description() -> dict:
    """CPU model, cores and library versions, for the report and the README table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in ("tensorflow", "keras", "ai_edge_litert", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a version is informative, not required
            versions[mod] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions}


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    epochs: int = 12,
    seed: int = 0,
    verbose: int = 0,
    steps=None,
    report: bool = True,
) -> list[dict]:
    """Run the whole demo; returns the rows (also written to ``out_dir/summary.json``).

    Args:
        out_dir: where models, ``summary.json`` and ``summary.md`` go.
        epochs: training epochs of the baseline (later steps scale from it).
        seed: seed of weights and data order.
        verbose: Keras ``fit`` verbosity.
        steps: names of the steps to run (default: all).
        report: also write ``out_dir/report.html`` (see :mod:`keras_compress.report`).
    """
    import keras

    from keras_compress.datasets import load_digits
    from keras_compress.summary import format_table, write_summary

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    data = load_digits()
    (x_train, y_train), (x_test, y_test) = data
    _progress(f"[data] digits: {len(x_train)} train / {len(x_test)} test images, {x_train.shape[1:]}")
    model = compile_classifier(build_demo_cnn(x_train.shape[1:]))
    _progress(f"[train] baseline CNN, {model.count_params():,} parameters, {epochs} epochs")
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose, validation_split=0.0)
    _, keras_acc = model.evaluate(x_test, y_test, verbose=0)
    _progress(f"  Keras float accuracy: {keras_acc:.2%}")
    model.save(out / "baseline.keras")

    ctx = DemoContext(out, data, model, epochs, verbose)
    wanted = set(steps) if steps is not None else None
    for name, step in STEPS:
        if wanted is None or name in wanted:
            step(ctx)

    meta = {"machine": machine_description(), "seconds": round(time.perf_counter() - t0, 1), "keras_accuracy": keras_acc}
    write_summary(ctx.rows, out, meta=meta)
    print(format_table(ctx.rows))
    if report:
        from keras_compress.report import write_report

        _progress(f"[report] {write_report(out)}")
    _progress(f"[done] {meta['seconds']:.0f} s; models and summary.json in {out}/")
    return ctx.rows
