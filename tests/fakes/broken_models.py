"""Small .tflite models that the TFLite interpreter mishandles, each made in a millisecond.

Every one is a valid flatbuffer (``edgetpu.read_model`` parses it) whose graph
is broken in a way that ai_edge_litert 2.3.0 does not report as a clean error:

* :func:`duplicate_op` -- the second CONV_2D is a copy of the first (same
  inputs and outputs), so the model's output is never produced: the
  interpreter *crashes the process* (SIGSEGV) while preparing it.
* :func:`bad_tensor_name` -- a tensor name that is not UTF-8: reading the
  tensor details raises ``UnicodeDecodeError``.
* :func:`unfed_input` -- an op reads a tensor that nothing produces and that is
  not a constant: ``invoke()`` raises ``RuntimeError("Input tensor N lacks data")``.
* :func:`unproduced_output` -- a model output that no op writes:
  ``get_tensor`` raises ``ValueError("Tensor data is null ...")``.
"""

from __future__ import annotations

import numpy as np

from fakes.tflite_builder import Graph

__all__ = ["BROKEN", "bad_tensor_name", "duplicate_op", "unfed_input", "unproduced_output"]


def _convs(*wiring: tuple[str, str], outputs: tuple[str, ...] = ("out",), names: dict | None = None) -> bytes:
    """A model of CONV_2D ops wired by tensor name: ``("input", "a")`` is a conv from ``input`` to ``a``.

    Tensors are made on first mention; ``outputs`` are the model's outputs
    (made even when no op writes them); ``names`` renames tensors (bytes allowed).
    """
    g = Graph()
    t = {"input": g.tensor("input", "int8", [1, 8, 8, 4], input=True)}
    w = g.tensor("w0", "int8", [4, 3, 3, 4], data=np.ones((4, 3, 3, 4)))
    b = g.tensor("b0", "int32", [4], data=np.zeros(4))
    for name in [n for pair in wiring for n in pair] + list(outputs):
        if name not in t:
            t[name] = g.tensor(name, "int8", [1, 8, 8, 4], output=name in outputs)
    for src, dst in wiring:
        g.op("CONV_2D", [t[src], w, b], [t[dst]])
    for name, new in (names or {}).items():
        g.tensors[t[name]].name = new
    return g.build()


def duplicate_op() -> bytes:
    return _convs(("input", "a"), ("input", "a"))


def bad_tensor_name() -> bytes:
    return _convs(("input", "a"), ("a", "out"), names={"out": b"\xff\xfe not utf-8"})


def unfed_input() -> bytes:
    return _convs(("input", "a"), ("nobody_writes_me", "out"))


def unproduced_output() -> bytes:
    return _convs(("input", "out"), outputs=("out", "never_written"))


#: name -> builder
BROKEN = {
    "duplicate_op": duplicate_op,
    "bad_tensor_name": bad_tensor_name,
    "unfed_input": unfed_input,
    "unproduced_output": unproduced_output,
}
