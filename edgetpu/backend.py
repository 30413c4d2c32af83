"""Which TFLite interpreter package runs the models: ai_edge_litert, else tflite_runtime, else tensorflow.lite.

`ai_edge_litert` is the maintained successor of `tflite_runtime`; a Coral board
or an old Raspberry Pi image may only have `tflite_runtime`; TensorFlow's own
`tf.lite.Interpreter` (deprecated since TF 2.19) is the last resort, so that
`edgetpu` never needs TensorFlow but still works where only it is installed.
Set ``EDGETPU_INTERPRETER`` to one of :data:`BACKENDS` to force a choice; the
variable is read on every call, so changing it takes effect at once (each
package is imported once and kept).

    >>> import edgetpu
    >>> be = edgetpu.interpreter_backend()
    >>> be.name in edgetpu.backend.BACKENDS and callable(be.Interpreter)
    True
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgetpu.errors import EdgeTPUError

__all__ = ["BACKENDS", "InterpreterBackend", "interpreter_backend"]

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")


@dataclass(frozen=True)
class InterpreterBackend:
    """An interpreter package: its ``name`` (one of :data:`BACKENDS`) and the three things `edgetpu` uses from it.

    Attributes:
        name: ``"ai_edge_litert"``, ``"tflite_runtime"`` or ``"tensorflow"``.
        Interpreter: the package's ``Interpreter`` class (``model_content=``,
            ``num_threads=``, ``experimental_delegates=``, ...).
        load_delegate: the package's ``load_delegate(library, options)``.
        OpResolverType: the package's ``OpResolverType`` enum, or None when it
            has none (then XNNPACK cannot be turned off).
    """

    name: str
    Interpreter: Any
    load_delegate: Callable[..., Any]
    OpResolverType: Any | None


@functools.cache
def _load(name: str) -> InterpreterBackend:
    """Import one package (cached per name; an ImportError is not cached)."""
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return InterpreterBackend(
            name, tf.lite.Interpreter, tf.lite.experimental.load_delegate, tf.lite.experimental.OpResolverType
        )
    mod = importlib.import_module(f"{name}.interpreter")
    return InterpreterBackend(name, mod.Interpreter, mod.load_delegate, getattr(mod, "OpResolverType", None))


def interpreter_backend(name: str | None = None) -> InterpreterBackend:
    """The interpreter package in use (or the one named).

    Args:
        name: one of :data:`BACKENDS` to force; default: ``$EDGETPU_INTERPRETER``
            (read now), else the first of :data:`BACKENDS` that imports.

    Raises:
        EdgeTPUError: an unknown name, a named package that does not import, or
            none installed (with what to install).
    """
    source = "interpreter_backend(name)" if name else "EDGETPU_INTERPRETER"
    name = name or os.environ.get("EDGETPU_INTERPRETER") or None
    if name is not None:
        if name not in BACKENDS:
            raise EdgeTPUError(f"{source}: expected one of {', '.join(BACKENDS)}, got {name!r}")
        try:
            return _load(name)
        except ImportError as e:
            raise EdgeTPUError(f"interpreter package {name!r} was asked for but does not import: {e}") from None
    return _first_available()


@functools.cache
def _first_available() -> InterpreterBackend:
    """The first package of :data:`BACKENDS` that imports (cached once found; a failure is not cached)."""
    errors = []
    for candidate in BACKENDS:
        try:
            return _load(candidate)
        except ImportError as e:
            errors.append(f"{candidate}: {e}")
    raise EdgeTPUError(
        "no TFLite interpreter package found; install one: `pip install ai-edge-litert` "
        "(or tflite-runtime on a board that has it). Tried: " + "; ".join(errors)
    )
