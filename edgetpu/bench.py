"""Latency harness: time ``invoke()`` on one model, CPU (XNNPACK) or Edge TPU.

Only the ``invoke()`` call is inside the timer; the input is set once with
random data of the input tensor's dtype (:func:`random_input`), as TFLite's
own benchmark_model does. The result reports the settings the interpreter was
really built with (recorded by :func:`edgetpu.make_interpreter`), not the
arguments of this call.

    >>> import numpy as np
    >>> from edgetpu.bench import random_input, summarize_ms
    >>> x = random_input({"dtype": np.int8, "shape": [1, 4, 4, 1]}, np.random.default_rng(0))
    >>> x.dtype, x.shape
    (dtype('int8'), (1, 4, 4, 1))
    >>> summarize_ms(np.array([1.0, 2.0, 3.0]))["median_ms"]
    2.0
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgetpu.errors import InputError
from edgetpu.runtime import (
    InterpreterInfo,
    interpreter_errors,
    interpreter_info,
    make_interpreter,
)

__all__ = ["benchmark", "random_input", "summarize_ms"]


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


def random_input(detail: dict, rng: np.random.Generator | None = None) -> np.ndarray:
    """Random data for one input tensor: its dtype, its shape (dynamic dims as 1).

    Integer tensors get uniform values over the dtype's whole range, float
    tensors uniform values in [0, 1).

    Args:
        detail: an entry of ``interpreter.get_input_details()`` (``"dtype"``, ``"shape"``).
        rng: the generator to draw from (default: ``np.random.default_rng(0)``).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    dtype = np.dtype(detail["dtype"])
    shape = [max(1, int(s)) for s in detail["shape"]]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def _given_interpreter(interpreter: Any, num_threads, use_xnnpack, device) -> InterpreterInfo | None:
    """The recorded settings of a ready interpreter; refuse arguments that contradict them."""
    info = interpreter_info(interpreter)
    asked = {"num_threads": num_threads, "use_xnnpack": use_xnnpack, "device": device}
    asked = {k: v for k, v in asked.items() if v is not None}
    if info is None:
        if asked:
            raise InputError(
                f"benchmark(): {', '.join(asked)} cannot apply to an interpreter that is already built, and this one "
                "was not made by edgetpu.make_interpreter so its settings are unknown; pass the model path instead"
            )
        return None
    have = {"num_threads": info.num_threads, "use_xnnpack": info.xnnpack, "device": info.device}
    wrong = [f"{k}={v!r} (it has {have[k]!r})" for k, v in asked.items() if v != have[k]]
    if wrong:
        raise InputError(
            f"benchmark(): the interpreter for {info.model_path or 'the model buffer'} was built with other "
            f"settings than asked: {', '.join(wrong)}; make a new one with edgetpu.make_interpreter or pass the model"
        )
    return info


def benchmark(
    model: Any,
    runs: int = 100,
    warmup: int = 10,
    num_threads: int | None = None,
    *,
    use_xnnpack: bool | None = None,
    device: str | None = None,
    seed: int = 0,
) -> dict:
    """Time ``runs`` invokes of ``model`` after ``warmup`` untimed ones.

    Args:
        model: a path or bytes, or an interpreter from :func:`make_interpreter`.
        runs: timed invokes (>= 1).
        warmup: untimed invokes first (XNNPACK packs weights on the first).
        num_threads: interpreter threads for a new interpreter; with a given
            interpreter, None or the value it was built with.
        use_xnnpack: apply XNNPACK (default True) for a new interpreter; with a
            given interpreter, None or what it was built with.
        device: Edge TPU device string for compiled models (same rule).
        seed: seed of the random input.

    Returns:
        ``{"mean_ms", "median_ms", "p90_ms", "p99_ms", "std_ms", "min_ms",
        "max_ms", "runs", "warmup", "num_threads", "xnnpack", "backend"}``;
        ``num_threads``, ``xnnpack`` and ``backend`` are those the interpreter
        was built with (``num_threads``/``xnnpack`` None for an interpreter
        not made by :func:`make_interpreter`).

    Raises:
        InputError: ``runs`` < 1, ``warmup`` < 0, or settings that contradict
            the given interpreter's.
        InvalidModelError: the interpreter failed on the model.
    """
    if runs < 1:
        raise InputError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise InputError(f"warmup must be >= 0, got {warmup}")
    if hasattr(model, "invoke"):
        interpreter = model
        info = _given_interpreter(interpreter, num_threads, use_xnnpack, device)
    else:
        xnnpack = True if use_xnnpack is None else bool(use_xnnpack)
        interpreter = make_interpreter(model, device=device, num_threads=num_threads, use_xnnpack=xnnpack)
        info = interpreter_info(interpreter)
    where = (info.model_path if info else None) or "model"
    with interpreter_errors(where, "invoking the model"):
        times = _time_invokes(interpreter, runs, warmup, np.random.default_rng(seed))
    result = summarize_ms(times / 1e6)
    result.update(
        runs=runs,
        warmup=warmup,
        num_threads=info.num_threads if info else None,
        xnnpack=info.xnnpack if info else None,
        backend=info.backend if info else type(interpreter).__module__.split(".")[0],
    )
    return result


def _time_invokes(interpreter: Any, runs: int, warmup: int, rng: np.random.Generator) -> np.ndarray:
    """Nanoseconds of ``runs`` invokes after ``warmup`` untimed ones, on one random input."""
    for d in interpreter.get_input_details():
        interpreter.set_tensor(d["index"], random_input(d, rng))
    invoke = interpreter.invoke
    for _ in range(warmup):
        invoke()
    times = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(runs):
        t0 = clock()
        invoke()
        times[i] = clock() - t0
    return times
