"""Load a .tflite model and run it: on the Edge TPU when the model is compiled for
it and a TPU is present, otherwise on the CPU with XNNPACK.

    >>> import edgetpu, numpy as np
    >>> interpreter = edgetpu.make_interpreter("model.tflite")       # doctest: +SKIP
    >>> probs = edgetpu.run(interpreter, np.zeros((4, 32, 32, 1)))   # doctest: +SKIP
    >>> edgetpu.classify(interpreter, x[0], top_k=3)                  # doctest: +SKIP
    [Class(id=7, score=0.91), ...]
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from edgetpu.backend import InterpreterBackend, interpreter_backend
from edgetpu.errors import EdgeTPUError, InputError, InvalidModelError
from edgetpu.model import load_bytes
from edgetpu.validation import validate

__all__ = [
    "Class",
    "InterpreterInfo",
    "classify",
    "dequantize",
    "interpreter_errors",
    "interpreter_info",
    "load_model_bytes",
    "make_interpreter",
    "quantize",
    "run",
]

log = logging.getLogger("edgetpu")


class Class(NamedTuple):
    """One classification result, as pycoral's ``adapters.classify.Class``."""

    id: int
    score: float


@dataclass(frozen=True)
class InterpreterInfo:
    """How :func:`make_interpreter` built an interpreter (what :func:`edgetpu.benchmark` reports).

    Attributes:
        model_path: the file it was made from, or None for bytes.
        backend: the interpreter package (``"ai_edge_litert"``, ``"tflite_runtime"``, ``"tensorflow"``).
        num_threads: the threads asked for (None: the runtime's default).
        xnnpack: whether the default XNNPACK delegate was left on.
        delegated: whether a delegate (the Edge TPU's, or the caller's) was applied.
        device: the Edge TPU device string asked for, if any.
    """

    model_path: str | None
    backend: str
    num_threads: int | None
    xnnpack: bool
    delegated: bool
    device: str | None = None


# Keyed by the interpreter object itself, so nothing is attached to a foreign class
# and an entry goes away with its interpreter.
_INFO: weakref.WeakKeyDictionary[Any, InterpreterInfo] = weakref.WeakKeyDictionary()


def interpreter_info(interpreter: Any) -> InterpreterInfo | None:
    """The settings ``interpreter`` was made with by :func:`make_interpreter`; None for one made elsewhere."""
    try:
        return _INFO.get(interpreter)
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def _where(interpreter: Any) -> str:
    info = interpreter_info(interpreter)
    if info is None:
        return "model"
    return info.model_path or "model buffer"


# What the interpreter's terse messages mean for the model (its own words are kept too).
_MEANING = (
    ("lacks data", "an op reads a tensor that no op writes and that is not a constant"),
    ("Tensor data is null", "a tensor the model reads or returns is never written by any op"),
)


def _one_line(text: str) -> str:
    msg = " / ".join(line.strip() for line in str(text).splitlines() if line.strip()) or "no message"
    msg = msg.replace(". Run allocate_tensors() first", "")  # allocate_tensors() did run: the model is the cause
    meaning = next((m for needle, m in _MEANING if needle in msg), None)
    return f"{msg} ({meaning})" if meaning else msg


@contextlib.contextmanager
def interpreter_errors(where: str, step: str) -> Iterator[None]:
    """Turn what a TFLite interpreter raises on a broken model into :class:`InvalidModelError`.

    The interpreter packages report a bad model with plain ``ValueError``
    ("Tensor data is null"), ``RuntimeError`` ("Input tensor 5 lacks data",
    "failed to prepare") or ``UnicodeDecodeError`` (a tensor name that is not
    UTF-8); inside this block they become one-line :class:`InvalidModelError`
    naming ``where`` (the file) and ``step`` (what was being done).

        >>> from edgetpu.runtime import interpreter_errors
        >>> with interpreter_errors("m.tflite", "invoking the model"):
        ...     raise RuntimeError("Input tensor 5 lacks data")
        Traceback (most recent call last):
        ...
        edgetpu.errors.InvalidModelError: m.tflite: the TFLite interpreter failed while invoking the model: Input tensor 5 lacks data (an op reads a tensor that no op writes and that is not a constant)
    """
    try:
        yield
    except EdgeTPUError:
        raise
    except UnicodeDecodeError as e:
        raise InvalidModelError(
            f"{where}: the TFLite interpreter failed while {step}: a tensor name is not valid UTF-8 ({e})"
        ) from None
    except (ValueError, RuntimeError) as e:
        raise InvalidModelError(f"{where}: the TFLite interpreter failed while {step}: {_one_line(e)}") from None


def load_model_bytes(model: Any) -> tuple[bytes, str | None]:
    """Return ``(flatbuffer bytes, path or None)`` for a path or a buffer, checking the TFLite identifier.

        >>> import edgetpu
        >>> data, path = edgetpu.load_model_bytes(b"1234TFL3" + bytes(8))
        >>> len(data), path
        (16, None)

    Raises:
        InvalidModelError: the file is missing, unreadable, a folder, empty, or
            not a TFLite flatbuffer (what was found is named).
    """
    data, _ = load_bytes(model)
    return data, (os.fspath(model) if isinstance(model, (str, os.PathLike)) else None)


def _check_settings(num_threads: int | None, use_xnnpack: bool, be: InterpreterBackend) -> int | None:
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
            raise InputError(f"num_threads must be an int >= 1 or None, got {num_threads!r}")
        num_threads = int(num_threads)
    if not use_xnnpack and be.OpResolverType is None:
        raise InputError(f"use_xnnpack=False needs an interpreter package with OpResolverType; {be.name} has none")
    return num_threads


def _build(be: InterpreterBackend, data: bytes, delegates: list, num_threads: int | None, use_xnnpack: bool,
           where: str):
    kwargs: dict[str, Any] = {"model_content": data, "experimental_delegates": delegates or None}
    if num_threads is not None:
        kwargs["num_threads"] = num_threads
    if not use_xnnpack:
        kwargs["experimental_op_resolver_type"] = be.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with interpreter_errors(where, "loading the model"):
        interpreter = be.Interpreter(**kwargs)
    with interpreter_errors(where, "allocating tensors"):
        interpreter.allocate_tensors()
    with interpreter_errors(where, "reading the input and output tensors"):
        interpreter.get_input_details()
        interpreter.get_output_details()
    return interpreter


def make_interpreter(
    model: Any,
    device: str | None = None,
    num_threads: int | None = None,
    use_xnnpack: bool = True,
    delegate: Any = None,
):
    """Create an allocated interpreter for ``model``.

    A model compiled for the Edge TPU (it holds the ``edgetpu-custom-op``) runs
    through the Edge TPU delegate on ``device``; where no TPU is present, the CPU
    model beside it (``foo.tflite`` next to ``foo_edgetpu.tflite``) is used
    instead and a log line says so, else :class:`~edgetpu.errors.NoEdgeTPUError`
    names the file to use. Any other model runs on the CPU, with XNNPACK unless
    ``use_xnnpack=False``. The settings are recorded: :func:`interpreter_info`.

    Args:
        model: path to a ``.tflite`` file, or its bytes.
        device: Edge TPU to use, as pycoral: ``":0"``, ``"usb"``, ``"usb:0"``,
            ``"pci"``, ``"pci:0"``; ``None`` takes the first.
        num_threads: CPU threads for the interpreter (and XNNPACK); ``None``
            lets the runtime choose.
        use_xnnpack: apply the default XNNPACK delegate on the CPU.
        delegate: an already loaded delegate to use instead of the Edge TPU one.

    Returns:
        An interpreter (``ai_edge_litert``, ``tflite_runtime`` or ``tf.lite``)
        with tensors allocated.

    Raises:
        InvalidModelError: the model is missing, corrupt or not TFLite, or the
            interpreter refused it (the message names the file and the step).
        InputError: ``num_threads`` < 1, or ``use_xnnpack=False`` where the
            package cannot turn XNNPACK off.
        NoEdgeTPUError / DelegateError: a compiled model with no usable TPU.
    """
    from edgetpu import delegate as _delegate

    be = interpreter_backend()
    num_threads = _check_settings(num_threads, use_xnnpack, be)
    data, path = load_model_bytes(model)
    where = path or "model buffer"
    if delegate is not None:
        delegates, note = [delegate], None
    else:
        data, delegates, note = _delegate.plan(data, path, device=device)
    if note:
        log.info(note)
    validate(data, where)  # refuse a graph the interpreter would crash or fail half-way on (edgetpu.validate)
    interpreter = _build(be, data, delegates, num_threads, use_xnnpack, where)
    with contextlib.suppress(TypeError):  # an interpreter class without weak references: settings not recorded
        _INFO[interpreter] = InterpreterInfo(path, be.name, num_threads, bool(use_xnnpack), bool(delegates), device)
    return interpreter


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Quantize float ``x`` with a tensor's scale and zero point, clipping to its dtype's range."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if not np.issubdtype(dtype, np.integer) or scale == 0:
        return x.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    """Float values of a quantized output tensor (float tensors are returned as float32)."""
    scale, zero_point = detail["quantization"]
    if np.issubdtype(q.dtype, np.integer) and scale != 0:
        return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return q.astype(np.float32, copy=False)


def _prepare_inputs(interpreter, x, details) -> list[np.ndarray]:
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    where = _where(interpreter)
    if len(xs) != len(details):
        raise InputError(f"{where}: the model has {len(details)} input(s), got {len(xs)} array(s)")
    out = []
    for a, d in zip(xs, details):
        a = np.asarray(a)
        sample_shape = tuple(int(s) for s in d["shape"][1:])
        if a.ndim == len(sample_shape):  # one sample
            a = a[None]
        if tuple(a.shape[1:]) != sample_shape:
            raise InputError(
                f"{where}: input {d['name']!r} expects shape (N, {', '.join(map(str, sample_shape))}), received {a.shape}"
            )
        want = np.dtype(d["dtype"])
        if np.issubdtype(a.dtype, np.floating):
            a = quantize(a, d)
        elif a.dtype != want:
            raise InputError(
                f"{where}: input {d['name']!r} expects {want.name} (or float data to quantize), received {a.dtype.name}"
            )
        out.append(a)
    if len({len(a) for a in out}) != 1:
        raise InputError(f"{where}: inputs have different batch sizes {[len(a) for a in out]}")
    return out


def run(interpreter, x: Any, *, dequantize_outputs: bool = True):
    """Run a batch through ``interpreter``, one sample at a time.

    Float inputs are quantized with the input tensor's scale and zero point;
    integer inputs of the tensor's own dtype pass through. Outputs are
    dequantized to float32 unless ``dequantize_outputs=False``.

    Args:
        interpreter: from :func:`make_interpreter`.
        x: an array ``(N, *input_shape)`` (or one sample ``input_shape``), or a
            list of such arrays for a model with several inputs.

    Returns:
        An array ``(N, *output_shape)``, or a list of them for several outputs.
    """
    where = _where(interpreter)
    with interpreter_errors(where, "reading the input and output tensors"):
        in_details = interpreter.get_input_details()
        out_details = interpreter.get_output_details()
    xs = _prepare_inputs(interpreter, x, in_details)
    if any(int(d["shape"][0]) != 1 for d in in_details):
        with interpreter_errors(where, "resizing the inputs to batch 1"):
            for d in in_details:
                interpreter.resize_tensor_input(d["index"], [1, *d["shape"][1:]])
            interpreter.allocate_tensors()
            out_details = interpreter.get_output_details()
    with interpreter_errors(where, "running the model"):
        outs = _invoke_each(interpreter, xs, in_details, out_details)
    if dequantize_outputs:
        outs = [dequantize(o, d) for o, d in zip(outs, out_details)]
    return outs[0] if len(outs) == 1 else outs


def _invoke_each(interpreter, xs: list[np.ndarray], in_details, out_details) -> list[np.ndarray]:
    n = len(xs[0])
    outs = [np.empty((n, *d["shape"][1:]), dtype=np.dtype(d["dtype"])) for d in out_details]
    set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor
    in_idx = [d["index"] for d in in_details]
    out_idx = [d["index"] for d in out_details]
    for i in range(n):
        for idx, a in zip(in_idx, xs):
            set_tensor(idx, a[i : i + 1])
        invoke()
        for o, idx in zip(outs, out_idx):
            o[i] = get_tensor(idx)[0]
    return outs


def classify(interpreter, x: Any, top_k: int = 5, threshold: float = 0.0) -> list[Class] | list[list[Class]]:
    """Top-k classes of one sample (or of each sample of a batch), as pycoral's ``get_classes``.

    Scores are the dequantized output values, highest first (probabilities
    for a softmax output, logits otherwise: pass ``threshold=float("-inf")``
    to keep negative logits); those below ``threshold`` are dropped.

    Returns:
        For one sample (``x`` without batch axis): a list of :class:`Class`;
        for a batch: a list of such lists.
    """
    if top_k < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    with interpreter_errors(_where(interpreter), "reading the input tensors"):
        details = interpreter.get_input_details()
    single = np.ndim(x) == len(details[0]["shape"]) - 1
    scores = run(interpreter, x)
    if isinstance(scores, list):
        scores = scores[0]
    scores = scores.reshape(len(scores), -1)
    results = []
    for row in scores:
        k = min(top_k, row.size)
        ids = np.argpartition(-row, k - 1)[:k]
        ids = ids[np.argsort(-row[ids], kind="stable")]
        results.append([Class(int(i), float(row[i])) for i in ids if row[i] >= threshold])
    return results[0] if single else results


def input_size(interpreter) -> Sequence[int]:
    """(height, width) of the first input, as pycoral's ``common.input_size``."""
    shape = interpreter.get_input_details()[0]["shape"]
    return int(shape[1]), int(shape[2])
