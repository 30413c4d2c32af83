"""Measure converted variants and report them as one table.

A *row* is a dict describing one .tflite variant: at least ``variant``,
``accuracy``, ``size_bytes``, ``gzip_bytes`` and ``latency_ms``; the demo and
the recipes add more keys (``mode``, ``sparsity``, ``edgetpu_mapped`` ...).
The same rows go to the terminal table, ``summary.json`` and the HTML report.
A latency figure means little without the CPU it came from: given the run's
machine description (:func:`keras_compress.machine.machine_description`), the
tables end with its line (CPU, cores, the ISA features that decide int8 speed).

Example:
    >>> print(format_table([{"variant": "int8", "accuracy": 0.975, "size_bytes": 236_800, "latency_ms": 0.0741}],
    ...                    machine={"cpu": "AMD EPYC", "cores": 2, "arch": "x86_64", "isa": ["avx2"]}))
    variant  accuracy       size  latency (1 thr)
    -------  --------  ---------  ---------------
    int8       97.50%  231.2 KiB         0.074 ms
    CPU: AMD EPYC, 2 cores, x86_64 (avx2); no int8 dot-product instructions (avx512_vnni, avx_vnni, amx_int8): int8 runs at about float32 speed
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edgetpu import atomic_write_bytes
from keras_compress.machine import describe

__all__ = ["measure_tflite", "gzip_size", "format_table", "format_markdown", "write_summary", "COLUMNS"]

# (key, header, format) of the printed table, in order; missing keys print "-".
COLUMNS = (
    ("variant", "variant", "{}"),
    ("mode", "mode", "{}"),
    ("accuracy", "accuracy", "{:.2%}"),
    ("size_bytes", "size", "_size"),
    ("gzip_bytes", "gzip", "_size"),
    ("latency_ms", "latency (1 thr)", "{:.3f} ms"),
    ("sparsity", "sparsity", "{:.0%}"),
    ("edgetpu_mapped", "TPU ops (pred.)", "{:.0%}"),
    ("edgetpu_compiled", "TPU compile", "{}"),
    ("tflite_runtime", "tflite-runtime", "{}"),
)


def gzip_size(data: bytes) -> int:
    """Size of ``data`` gzipped at level 9: what a sparse model costs to ship."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def measure_tflite(
    variant: str,
    tflite: bytes,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    runs: int = 100,
    warmup: int = 10,
    num_threads: int = 1,
    **extra: Any,
) -> dict:
    """Accuracy (through :func:`edgetpu.run`), file size, gzip size and median latency of one model.

    Args:
        variant: row name.
        tflite: the model bytes.
        x_test, y_test: evaluation data (float images, integer labels).
        runs, warmup, num_threads: latency measurement settings.
        **extra: more keys for the row (e.g. ``mode="int8"``).
    """
    import edgetpu

    interpreter = edgetpu.make_interpreter(tflite, num_threads=num_threads)
    scores = edgetpu.run(interpreter, x_test)
    if isinstance(scores, list):
        scores = scores[0]
    accuracy = float(np.mean(scores.reshape(len(scores), -1).argmax(-1) == np.asarray(y_test).reshape(-1)))
    bench = edgetpu.benchmark(interpreter, runs=runs, warmup=warmup)
    row = {
        "variant": variant,
        "accuracy": accuracy,
        "size_bytes": len(tflite),
        "gzip_bytes": gzip_size(tflite),
        "latency_ms": bench["median_ms"],
        "latency_p90_ms": bench["p90_ms"],
        "num_threads": num_threads,
    }
    row.update(extra)
    return row


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "_size":
        v = float(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if v < 1024 or unit == "GiB":
                return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
            v /= 1024
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def format_table(rows: Iterable[dict], machine: dict | None = None) -> str:
    """A fixed-width text table of ``rows``; columns that no row has are left out; the machine line last."""
    rows = list(rows)
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    cells = [[h for _, h, _ in cols]] + [[_fmt(r.get(k), f) for k, _, f in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(cells):
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    if machine:
        lines.append(describe(machine))
    return "\n".join(lines)


def format_markdown(rows: Iterable[dict], machine: dict | None = None) -> str:
    """The same table as GitHub markdown (the machine line after it)."""
    rows = list(rows)
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    out = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(k), f) for k, _, f in cols) + " |")
    if machine:
        out += ["", describe(machine)]
    return "\n".join(out)


def write_summary(rows: list[dict], out_dir: str | os.PathLike, meta: dict | None = None) -> list[Path]:
    """Write ``out_dir/summary.json`` (the list of rows) and ``summary.md``; ``meta`` goes to ``run.json``.

    Returns:
        The paths written, ``summary.json`` first.
    """
    out = Path(out_dir)
    machine = (meta or {}).get("machine")
    paths = [
        atomic_write_bytes(out / "summary.json", json.dumps(rows, indent=2, default=str).encode()),
        atomic_write_bytes(out / "summary.md", (format_markdown(rows, machine) + "\n").encode()),
    ]
    if meta is not None:
        paths.append(atomic_write_bytes(out / "run.json", json.dumps(meta, indent=2, default=str).encode()))
    return paths
