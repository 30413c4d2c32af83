"""Latency harness: time ``invoke()`` on one model, CPU (XNNPACK) or Edge TPU.

Only the ``invoke()`` call is inside the timer; the input is set once with
random data of the input tensor's dtype, as TFLite's own benchmark_model does.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgetpu._interpreter import backend
from edgetpu.errors import InputError
from edgetpu.runtime import make_interpreter

__all__ = ["benchmark", "summarize_ms"]


def summarize_ms(times_ms: np.ndarray) -> dict:
    """mean/median/p90/p99/std/min/max of a vector of milliseconds."""
    t = np.asarray(times_ms, dtype=np.float64)
    return {
        "mean_ms": float(t.mean()),
        "median_ms": float(np.median(t)),
        "p90_ms": float(np.percentile(t, 90)),
        "p99_ms": float(np.percentile(t, 99)),
        "std_ms": float(t.std()),
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
    }


def _random_input(detail: dict, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    shape = [max(1, int(s)) for s in detail["shape"]]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def benchmark(
    model: Any,
    runs: int = 100,
    warmup: int = 10,
    num_threads: int | None = None,
    *,
    use_xnnpack: bool = True,
    device: str | None = None,
    seed: int = 0,
) -> dict:
    """Time ``runs`` invokes of ``model`` after ``warmup`` untimed ones.

    Args:
        model: a path or bytes, or an interpreter from :func:`make_interpreter`.
        runs: timed invokes (>= 1).
        warmup: untimed invokes first (XNNPACK packs weights on the first).
        num_threads: interpreter threads (ignored when an interpreter is given).
        use_xnnpack: apply XNNPACK (ignored when an interpreter is given).
        device: Edge TPU device string for compiled models.

    Returns:
        ``{"mean_ms", "median_ms", "p90_ms", "p99_ms", "std_ms", "min_ms",
        "max_ms", "runs", "warmup", "num_threads", "xnnpack", "backend"}``.
    """
    if runs < 1:
        raise InputError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise InputError(f"warmup must be >= 0, got {warmup}")
    if hasattr(model, "invoke"):
        interpreter = model
    else:
        interpreter = make_interpreter(model, device=device, num_threads=num_threads, use_xnnpack=use_xnnpack)
    rng = np.random.default_rng(seed)
    for d in interpreter.get_input_details():
        interpreter.set_tensor(d["index"], _random_input(d, rng))
    invoke = interpreter.invoke
    for _ in range(warmup):
        invoke()
    times = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(runs):
        t0 = clock()
        invoke()
        times[i] = clock() - t0
    result = summarize_ms(times / 1e6)
    result.update(
        runs=runs, warmup=warmup, num_threads=num_threads, xnnpack=bool(use_xnnpack), backend=backend().name
    )
    return result
