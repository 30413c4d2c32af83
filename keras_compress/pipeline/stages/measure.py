"""``measure``: accuracy (through the ``edgetpu`` runtime), size, gzip size, latency and Edge TPU columns of a .tflite.

Adds one row to the run's table. Latency is the median of ``latency_runs``
invokes on the CPU (XNNPACK) with ``num_threads`` threads. For int8 models
it adds ``edgetpu.check``'s predicted fraction of ops on the TPU, and the
compiler's own count where Coral's ``edgetpu_compiler`` is installed
(compiled models go to ``edgetpu/`` in the run folder).

Example:
    >>> MeasureSpec().latency_runs, MeasureSpec().num_threads
    (50, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import boolean, integer, setting

__all__ = ["MeasureSpec", "run", "STAGE", "edgetpu_columns"]


@dataclass(frozen=True, kw_only=True)
class MeasureSpec:
    """Latency settings, and whether to add the Edge TPU columns of int8 models."""

    latency_runs: int = setting(integer(1, 100_000), 50)
    warmup: int = setting(integer(0, 100_000), 10)
    num_threads: int = setting(integer(1, 256), 1)
    edgetpu: bool = setting(boolean, True)


def edgetpu_columns(tflite_path: Path, mode: str | None, out_dir: Path | None = None) -> dict[str, Any]:
    """Edge TPU columns of an int8 model: predicted fraction of ops on the TPU, and the compiler's count.

    Args:
        tflite_path: the model file.
        mode: its conversion mode (only ``"int8"`` gets columns).
        out_dir: where the compiler writes (default ``edgetpu/`` beside the model).

    Returns:
        ``{}`` for other modes; else ``edgetpu_mapped`` and ``edgetpu_compiled``
        (``"no compiler"``, ``"<n>/<m> on TPU"`` or ``"failed: ..."``), and
        ``edgetpu_on_chip_bytes`` and ``edgetpu_files`` after a compile.
    """
    if mode != "int8":
        return {}
    import edgetpu
    from edgetpu.compiler import find_compiler
    from edgetpu.errors import CompilerError, CompilerNotFoundError

    cols: dict[str, Any] = {"edgetpu_mapped": edgetpu.check(tflite_path).fraction_mapped}
    try:
        find_compiler()
    except CompilerNotFoundError:
        cols["edgetpu_compiled"] = "no compiler"
        return cols
    try:
        result = edgetpu.compile(tflite_path, out_dir or tflite_path.parent / "edgetpu")
    except CompilerError as e:
        cols["edgetpu_compiled"] = f"failed: {str(e).splitlines()[0][:60]}"
        return cols
    cols["edgetpu_compiled"] = f"{result.ops_on_tpu}/{result.ops_on_tpu + result.ops_on_cpu} on TPU"
    cols["edgetpu_on_chip_bytes"] = result.on_chip_bytes
    cols["edgetpu_files"] = [str(p) for p in [*result.output_paths, *result.log_paths] if p]
    return cols


def run(spec: MeasureSpec, artifact: Artifact, ctx) -> Artifact:
    from keras_compress.summary import measure_tflite

    meta = artifact.meta
    extra = {k: meta[k] for k in ("mode", "keras_accuracy", "sparsity", "params", "file") if meta.get(k) is not None}
    row = measure_tflite(artifact.name, artifact.model, ctx.x_test, ctx.y_test, runs=spec.latency_runs,
                         warmup=spec.warmup, num_threads=spec.num_threads, model=meta.get("variant"), **extra)
    from keras_compress.pipeline.runtimes import other_runtime_column, runs_in

    row["runs_in"] = runs_in()  # measured: the accuracy above came from it
    if meta.get("file"):
        row.update(other_runtime_column(ctx.folder.path / meta["file"]))
    if spec.edgetpu and meta.get("file"):
        cols = edgetpu_columns(ctx.folder.path / meta["file"], meta.get("mode"), ctx.folder.path / "edgetpu")
        for f in cols.pop("edgetpu_files", []):
            ctx.folder.record(f)
        row.update(cols)
    ctx.rows.append(row)
    ctx.say(f"  {row['variant']}: accuracy {row['accuracy']:.2%}, {row['size_bytes'] / 1024:.1f} KiB, {row['latency_ms']:.3f} ms")
    return artifact.evolve(stage="measure", row=row)


STAGE = Stage("measure", MeasureSpec, run, takes="tflite", gives="tflite")
