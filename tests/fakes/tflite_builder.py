"""Hand-built .tflite flatbuffers for rules the converter will not easily emit.

Uses the schema's object API (``ModelT`` & co. from
``ai_edge_litert.schema_py_generated``) and the flatbuffers builder, so a
test can make e.g. a CONV_2D v6, a pooling op with a fused ReLU, a STRIDED_SLICE
with stride 2 or a model holding ``edgetpu-custom-op`` in a millisecond,
without TensorFlow.

    b = Graph()
    x = b.tensor("x", "int8", [1, 8, 8, 4], input=True)
    w = b.tensor("w", "int8", [4, 3, 3, 4], data=np.ones(...))
    y = b.tensor("y", "int8", [1, 8, 8, 4], output=True)
    b.op("CONV_2D", [x, w], [y], version=3, options=("Conv2DOptions", {...}))
    data = b.build()
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s

_TYPES = {
    "float32": s.TensorType.FLOAT32,
    "float16": s.TensorType.FLOAT16,
    "int32": s.TensorType.INT32,
    "uint8": s.TensorType.UINT8,
    "int64": s.TensorType.INT64,
    "int16": s.TensorType.INT16,
    "int8": s.TensorType.INT8,
}

#: Default options for ops whose checks read them.
DEFAULT_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", {"padding": 0, "strideW": 1, "strideH": 1, "dilationWFactor": 1, "dilationHFactor": 1}),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", {"padding": 0, "strideW": 1, "strideH": 1, "depthMultiplier": 1,
                                                     "dilationWFactor": 1, "dilationHFactor": 1}),
    "MAX_POOL_2D": ("Pool2DOptions", {"padding": 0, "strideW": 2, "strideH": 2, "filterWidth": 2, "filterHeight": 2}),
    "AVERAGE_POOL_2D": ("Pool2DOptions", {"padding": 0, "strideW": 2, "strideH": 2, "filterWidth": 2,
                                          "filterHeight": 2}),
    "SOFTMAX": ("SoftmaxOptions", {"beta": 1.0}),
    "STRIDED_SLICE": ("StridedSliceOptions", {}),
    "FULLY_CONNECTED": ("FullyConnectedOptions", {}),
    "CONCATENATION": ("ConcatenationOptions", {"axis": -1}),
    "ADD": ("AddOptions", {}),
    "MEAN": ("ReducerOptions", {"keepDims": False}),
    "PAD": ("PadOptions", {}),
    "RESHAPE": ("ReshapeOptions", {}),
}


class Graph:
    """A one-subgraph model under construction."""

    def __init__(self):
        self.tensors: List[s.TensorT] = []
        self.buffers: List[s.BufferT] = [s.BufferT()]  # buffer 0: the empty sentinel
        self.ops: List[Tuple[int, List[int], List[int], Optional[Tuple[str, Dict[str, Any]]]]] = []
        self.codes: List[Tuple[int, Optional[str], int]] = []
        self.inputs: List[int] = []
        self.outputs: List[int] = []
        self.metadata: Dict[str, bytes] = {}

    def tensor(self, name: str, dtype: str, shape: Sequence[int], *, data: Optional[np.ndarray] = None,
               signature: Optional[Sequence[int]] = None, scale: float = 0.05, zero_point: int = 0,
               input: bool = False, output: bool = False) -> int:
        t = s.TensorT()
        t.name = name
        t.type = _TYPES[dtype]
        t.shape = np.array(list(shape), dtype=np.int32)
        if signature is not None:
            t.shapeSignature = np.array(list(signature), dtype=np.int32)
        if dtype in ("int8", "uint8", "int16", "int32"):
            q = s.QuantizationParametersT()
            q.scale = np.array([scale], dtype=np.float32)
            q.zeroPoint = np.array([zero_point], dtype=np.int64)
            t.quantization = q
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).astype(dtype).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            self.buffers.append(s.BufferT())
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        idx = len(self.tensors) - 1
        if input:
            self.inputs.append(idx)
        if output:
            self.outputs.append(idx)
        return idx

    def const(self, name: str, values, dtype: str = "int32") -> int:
        arr = np.asarray(values)
        return self.tensor(name, dtype, arr.shape, data=arr)

    def op(self, op: str, inputs: Sequence[int], outputs: Sequence[int], *, version: int = 1,
           options: Optional[Tuple[str, Dict[str, Any]]] = None, **option_values) -> None:
        if op.startswith("custom:"):
            code, custom = s.BuiltinOperator.CUSTOM, op[len("custom:"):]
        else:
            code, custom = getattr(s.BuiltinOperator, op), None
        key = (code, custom, version)
        if key not in self.codes:
            self.codes.append(key)
        if options is None and op in DEFAULT_OPTIONS:
            name, vals = DEFAULT_OPTIONS[op]
            options = (name, dict(vals))
        if options is not None and option_values:
            options = (options[0], {**options[1], **option_values})
        self.ops.append((self.codes.index(key), list(inputs), list(outputs), options))

    def build(self) -> bytes:
        m = s.ModelT()
        m.version = 3
        m.description = "hand-built test model"
        m.operatorCodes = []
        for code, custom, version in self.codes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            if custom is not None:
                oc.customCode = custom
            m.operatorCodes.append(oc)
        sg = s.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = np.array(self.inputs, dtype=np.int32)
        sg.outputs = np.array(self.outputs, dtype=np.int32)
        sg.operators = []
        for ci, ins, outs, options in self.ops:
            o = s.OperatorT()
            o.opcodeIndex = ci
            o.inputs = np.array(ins, dtype=np.int32)
            o.outputs = np.array(outs, dtype=np.int32)
            if options is not None:
                name, vals = options
                obj = getattr(s, name + "T")()
                for k, v in vals.items():
                    if not hasattr(obj, k):
                        raise AttributeError(f"{name} has no field {k}")
                    setattr(obj, k, v)
                o.builtinOptionsType = getattr(s.BuiltinOptions, name)
                o.builtinOptions = obj
            if self.codes[ci][1] is not None:
                o.customOptions = np.frombuffer(b"\x00" * 8, dtype=np.uint8)
            sg.operators.append(o)
        sg.name = "main"
        m.subgraphs = [sg]
        m.buffers = list(self.buffers)
        m.metadata = []
        for k, v in self.metadata.items():
            b = s.BufferT()
            b.data = np.frombuffer(v, dtype=np.uint8)
            m.buffers.append(b)
            md = s.MetadataT()
            md.name = k
            md.buffer = len(m.buffers) - 1
            m.metadata.append(md)
        fb = flatbuffers.Builder(1024)
        fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())


def conv_chain(n_convs: int = 2, *, dtype: str = "int8", conv_version: int = 3, size: int = 8, channels: int = 4,
               signature_batch: Optional[int] = None) -> Graph:
    """x -> CONV_2D x n -> y, all ``dtype``; weights int8 (or float32 for a float model)."""
    g = Graph()
    wtype = "float32" if dtype == "float32" else "int8"
    sig = [signature_batch, size, size, channels] if signature_batch is not None else None
    x = g.tensor("input", dtype, [1, size, size, channels], signature=sig, input=True)
    for i in range(n_convs):
        w = g.tensor(f"w{i}", wtype, [channels, 3, 3, channels], data=np.ones((channels, 3, 3, channels)))
        bias = g.tensor(f"b{i}", "int32" if wtype == "int8" else "float32", [channels], data=np.zeros(channels))
        y = g.tensor(f"conv{i}", dtype, [1, size, size, channels], signature=sig, output=(i == n_convs - 1))
        g.op("CONV_2D", [x, w, bias], [y], version=conv_version)
        x = y
    return g


def compiled_model() -> bytes:
    """What edgetpu_compiler writes for a fully mapped model: one edgetpu-custom-op."""
    g = Graph()
    x = g.tensor("input", "int8", [1, 8, 8, 4], input=True)
    y = g.tensor("output", "int8", [1, 10], output=True)
    g.op("custom:edgetpu-custom-op", [x], [y])
    return g.build()
