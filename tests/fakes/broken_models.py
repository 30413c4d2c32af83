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


def _start():
    g = Graph()
    x = g.tensor("input", "int8", [1, 8, 8, 4], input=True)
    w = g.tensor("w0", "int8", [4, 3, 3, 4], data=np.ones((4, 3, 3, 4)))
    b = g.tensor("b0", "int32", [4], data=np.zeros(4))
    return g, x, w, b


def duplicate_op() -> bytes:
    g, x, w, b = _start()
    y0 = g.tensor("conv0", "int8", [1, 8, 8, 4])
    g.tensor("conv1", "int8", [1, 8, 8, 4], output=True)
    g.op("CONV_2D", [x, w, b], [y0])
    g.op("CONV_2D", [x, w, b], [y0])
    return g.build()


def bad_tensor_name() -> bytes:
    g, x, w, b = _start()
    y0 = g.tensor("conv0", "int8", [1, 8, 8, 4])
    y1 = g.tensor("conv1", "int8", [1, 8, 8, 4], output=True)
    g.tensors[y1].name = b"\xff\xfe not utf-8"
    g.op("CONV_2D", [x, w, b], [y0])
    g.op("CONV_2D", [y0, w, b], [y1])
    return g.build()


def unfed_input() -> bytes:
    g, x, w, b = _start()
    y0 = g.tensor("conv0", "int8", [1, 8, 8, 4])
    y1 = g.tensor("conv1", "int8", [1, 8, 8, 4], output=True)
    z = g.tensor("nobody_writes_me", "int8", [1, 8, 8, 4])
    g.op("CONV_2D", [x, w, b], [y0])
    g.op("CONV_2D", [z, w, b], [y1])
    return g.build()


def unproduced_output() -> bytes:
    g, x, w, b = _start()
    y0 = g.tensor("conv0", "int8", [1, 8, 8, 4], output=True)
    g.tensor("never_written", "int8", [1, 8, 8, 4], output=True)
    g.op("CONV_2D", [x, w, b], [y0])
    return g.build()


#: name -> builder
BROKEN = {
    "duplicate_op": duplicate_op,
    "bad_tensor_name": bad_tensor_name,
    "unfed_input": unfed_input,
    "unproduced_output": unproduced_output,
}
