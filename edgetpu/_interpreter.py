"""Pick the TFLite interpreter package: ai_edge_litert, else tflite_runtime, else tensorflow.lite.

`ai_edge_litert` is the maintained successor of `tflite_runtime`; a Coral board
or an old Raspberry Pi image may only have `tflite_runtime`; TensorFlow's own
`tf.lite.Interpreter` (deprecated since TF 2.19) is the last resort, so that
`edgetpu` never needs TensorFlow but still works where only it is installed.
Set ``EDGETPU_INTERPRETER`` to one of the names to force a choice.

The choice is made on first use, not at import, so importing `edgetpu` stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import SimpleNamespace

from edgetpu.errors import EdgeTPUError

__all__ = ["backend", "BACKENDS"]

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")


def _load(name: str) -> SimpleNamespace:
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return SimpleNamespace(
            name=name,
            Interpreter=tf.lite.Interpreter,
            load_delegate=tf.lite.experimental.load_delegate,
            OpResolverType=tf.lite.experimental.OpResolverType,
        )
    mod = importlib.import_module(f"{name}.interpreter")
    return SimpleNamespace(
        name=name,
        Interpreter=mod.Interpreter,
        load_delegate=mod.load_delegate,
        OpResolverType=getattr(mod, "OpResolverType", None),
    )


@functools.lru_cache(maxsize=None)
def backend(name: str | None = None) -> SimpleNamespace:
    """The interpreter package in use: ``.name``, ``.Interpreter``, ``.load_delegate``, ``.OpResolverType``.

    Args:
        name: force one of :data:`BACKENDS`; default: ``$EDGETPU_INTERPRETER``,
            else the first that imports.
    """
    name = name or os.environ.get("EDGETPU_INTERPRETER") or None
    if name is not None:
        if name not in BACKENDS:
            raise EdgeTPUError(f"EDGETPU_INTERPRETER: expected one of {', '.join(BACKENDS)}, got {name!r}")
        try:
            return _load(name)
        except ImportError as e:
            raise EdgeTPUError(f"interpreter package {name!r} was asked for but does not import: {e}") from e
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
