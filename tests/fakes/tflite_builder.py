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

from collections.abc import Sequence
from typing import Any

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
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", {}),
    "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighborOptions", {}),
    "ARG_MAX": ("ArgMaxOptions", {"outputType": 2}),
    "PACK": ("PackOptions", {"valuesCount": 2, "axis": 0}),
    "MUL": ("MulOptions", {}),
    "SUB": ("SubOptions", {}),
    "DIV": ("DivOptions", {}),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("UnidirectionalSequenceLSTMOptions",
                                     {"fusedActivationFunction": 4, "cellClip": 10.0, "timeMajor": False}),
    "BIDIRECTIONAL_SEQUENCE_LSTM": ("BidirectionalSequenceLSTMOptions",
                                    {"fusedActivationFunction": 4, "cellClip": 10.0, "timeMajor": False,
                                     "mergeOutputs": True}),
}


class Graph:
    """A one-subgraph model under construction."""

    def __init__(self):
        self.tensors: list[s.TensorT] = []
        self.buffers: list[s.BufferT] = [s.BufferT()]  # buffer 0: the empty sentinel
        self.ops: list[tuple[int, list[int], list[int], tuple[str, dict[str, Any]] | None]] = []
        self.codes: list[tuple[int, str | None, int]] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.metadata: dict[str, bytes] = {}
        self.intermediates: dict[int, list[int]] = {}

    def tensor(self, name: str, dtype: str, shape: Sequence[int], *, data: np.ndarray | None = None,
               signature: Sequence[int] | None = None, scale: float = 0.05, zero_point: int = 0,
               input: bool = False, output: bool = False, variable: bool = False) -> int:
        t = s.TensorT()
        t.name = name
        t.type = _TYPES[dtype]
        t.shape = np.array(list(shape), dtype=np.int32)
        t.isVariable = variable
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
           options: tuple[str, dict[str, Any]] | None = None, intermediates: Sequence[int] = (),
           **option_values) -> None:
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
        if intermediates:
            self.intermediates[len(self.ops) - 1] = list(intermediates)

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
        for n, (ci, ins, outs, options) in enumerate(self.ops):
            o = s.OperatorT()
            o.opcodeIndex = ci
            o.inputs = np.array(ins, dtype=np.int32)
            o.outputs = np.array(outs, dtype=np.int32)
            if n in self.intermediates:
                o.intermediates = np.array(self.intermediates[n], dtype=np.int32)
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
               signature_batch: int | None = None) -> Graph:
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


# ------------------------------------------------------------------ the patterns of issue 12 (EDGETPU.md)


def _conv(g: Graph, x: int, size: int, cin: int, cout: int, name: str, *, stride: int = 1, k: int = 3,
          depthwise: bool = False) -> tuple[int, int]:
    """An int8 CONV_2D (or DEPTHWISE_CONV_2D) with SAME padding; returns (output tensor, output size)."""
    out = -(-size // stride)
    rng = np.random.default_rng(len(g.tensors))
    shape = [1, k, k, cout] if depthwise else [cout, k, k, cin]
    w = g.tensor(f"{name}/w", "int8", shape, data=rng.integers(-100, 100, shape), scale=0.02)
    b = g.tensor(f"{name}/b", "int32", [cout], data=rng.integers(-50, 50, cout), scale=0.001)
    y = g.tensor(name, "int8", [1, out, out, cout], scale=0.05)
    if depthwise:
        g.op("DEPTHWISE_CONV_2D", [x, w, b], [y], version=2, strideW=stride, strideH=stride)
    else:
        g.op("CONV_2D", [x, w, b], [y], version=3, strideW=stride, strideH=stride)
    return y, out


def _movenet_body(g: Graph, q: int, size: int) -> tuple[dict[str, int], int, int]:
    """The int8 body: backbone, a 2x upsampling FPN step, 4 heads; returns (heads, flat center, grid size)."""
    h, s1 = _conv(g, q, size, 3, 16, "stem", stride=2)
    h, _ = _conv(g, h, s1, 16, 16, "dw1", depthwise=True)
    h2, s2 = _conv(g, h, s1, 16, 32, "block2", stride=2)
    h3, _ = _conv(g, h2, s2, 32, 32, "block3", stride=2)
    up = g.tensor("upsample", "int8", [1, s2, s2, 32])
    g.op("RESIZE_BILINEAR", [h3, g.const("upsample/size", [s2, s2])], [up], version=3)
    added = g.tensor("fpn_add", "int8", [1, s2, s2, 32])
    g.op("ADD", [up, h2], [added], version=2)
    scaled = g.tensor("fpn_mul", "int8", [1, s2, s2, 32])
    g.op("MUL", [added, g.tensor("fpn_mul/c", "int8", [32], data=np.arange(1, 33))], [scaled], version=2)
    body = g.tensor("fpn_sub", "int8", [1, s2, s2, 32])
    g.op("SUB", [scaled, g.tensor("fpn_sub/c", "int8", [32], data=np.arange(32))], [body], version=2)
    heads = {}
    for name, ch, act in (("heatmap", 17, True), ("center", 1, True), ("regress", 34, False), ("offset", 34, False)):
        y, _ = _conv(g, body, s2, 32, ch, f"{name}/conv", k=1)
        if act:
            z = g.tensor(name, "int8", [1, s2, s2, ch], scale=1 / 256, zero_point=-128)
            g.op("LOGISTIC", [y], [z])
            y = z
        heads[name] = y
    flat = g.tensor("center_flat", "int8", [1, s2 * s2], scale=1 / 256, zero_point=-128)
    g.op("RESHAPE", [heads["center"], g.const("center_flat/shape", [1, s2 * s2])], [flat])
    return heads, flat, s2


def _movenet_post(g: Graph, heads: dict[str, int], flat: int, s2: int) -> None:
    """Post-processing: the center's argmax -> row, column -> gather the heads there -> float keypoints."""
    idx = g.tensor("argmax", "int32", [1])
    g.op("ARG_MAX", [flat, g.const("argmax/axis", [1])], [idx], version=2)
    yy = g.tensor("row", "int32", [1])
    g.op("FLOOR_DIV", [idx, g.const("row/div", [s2])], [yy])
    y16 = g.tensor("row_x_width", "int32", [1])
    g.op("MUL", [yy, g.const("width", [s2])], [y16], version=4)
    xx = g.tensor("col", "int32", [1])
    g.op("SUB", [idx, y16], [xx], version=3)
    yx = g.tensor("batch_row_col", "int32", [1, 3])
    g.op("PACK", [g.const("batch", [0]), yy, xx], [yx], valuesCount=3, axis=1)
    picked = {}
    for name in ("heatmap", "regress", "offset"):
        picked[name] = g.tensor(f"{name}_at_center", "int8", [1, 17 if name == "heatmap" else 34])
        g.op("GATHER_ND", [heads[name], yx], [picked[name]])
    moved = g.tensor("regress_plus_offset", "int8", [1, 34])
    g.op("ADD", [picked["regress"], picked["offset"]], [moved], version=2)
    kp = g.tensor("keypoints_float", "float32", [1, 34])
    g.op("DEQUANTIZE", [moved], [kp], version=2)
    rowf = g.tensor("row_float", "float32", [1])
    g.op("CAST", [yy], [rowf])
    norm = g.tensor("keypoints_norm", "float32", [1, 34])
    g.op("DIV", [kp, g.const("grid", np.full([1], float(s2), np.float32), "float32")], [norm])
    sq = g.tensor("keypoints_sq", "float32", [1, 34])
    g.op("MUL", [norm, norm], [sq], version=1)
    g.op("SQRT", [sq], [g.tensor("keypoints", "float32", [1, 34], output=True)])
    g.op("DEQUANTIZE", [picked["heatmap"]], [g.tensor("scores", "float32", [1, 17], output=True)], version=2)
    rows = g.tensor("center_row", "float32", [1], output=True)
    g.op("DIV", [rowf, g.const("rows", np.full([1], float(s2), np.float32), "float32")], [rows])


def movenet_style(size: int = 64) -> tuple[bytes, dict[str, list[int]]]:
    """uint8 image -> CAST -> QUANTIZE -> int8 body -> post-processing on int32/float -> outputs.

    The pattern of a MoveNet compiled by edgetpu_compiler 16 (EDGETPU.md): CAST and QUANTIZE float->int8
    stay on the CPU before the Edge TPU op; the int8 body (CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL, SUB, 2x
    RESIZE_BILINEAR, LOGISTIC, RESHAPE) is one Edge TPU segment with several outputs; ARG_MAX, FLOOR_DIV,
    CAST, GATHER_ND, PACK, DIV, SQRT, DEQUANTIZE post-processing (and an int8 ADD that depends on it) run
    on the CPU after it. Returns the model and ``{"prefix", "tpu", "cpu"}`` op indices as built.
    """
    g = Graph()
    x = g.tensor("image", "uint8", [1, size, size, 3], scale=1.0, input=True)
    f = g.tensor("image_float", "float32", [1, size, size, 3])
    g.op("CAST", [x], [f])
    q = g.tensor("image_int8", "int8", [1, size, size, 3], scale=1.0, zero_point=-128)
    g.op("QUANTIZE", [f], [q])
    n0 = len(g.ops)
    heads, flat, s2 = _movenet_body(g, q, size)
    n1 = len(g.ops)
    _movenet_post(g, heads, flat, s2)
    parts = {"prefix": [0, 1], "tpu": list(range(n0, n1)), "cpu": list(range(n1, len(g.ops)))}
    return g.build(), parts


def _lstm_tensors(g: Graph, features: int, units: int) -> list[int]:
    """The 24 inputs of an int8 UNIDIRECTIONAL_SEQUENCE_LSTM after the input itself, as the converter lays them out."""
    rng = np.random.default_rng(7)
    ins = []
    for kind, cols in (("input", features), ("recurrent", units)):
        for gate in ("input", "forget", "cell", "output"):
            ins.append(g.tensor(f"lstm/{kind}_to_{gate}_w", "int8", [units, cols],
                                data=rng.integers(-127, 127, (units, cols)), scale=0.01))
    ins += [-1, -1, -1]  # no peephole (cell-to-gate) weights
    for gate in ("input", "forget", "cell", "output"):
        ins.append(g.tensor(f"lstm/{gate}_gate_bias", "int32", [units], data=rng.integers(-500, 500, units),
                            scale=1e-4))
    ins += [-1, -1]  # no projection
    ins.append(g.tensor("lstm/output_state", "int8", [1, units], scale=1 / 128, variable=True))
    ins.append(g.tensor("lstm/cell_state", "int16", [1, units], scale=2.0 ** -11, variable=True))
    ins += [-1, -1, -1, -1]  # no layer normalization
    return ins


def int8_lstm(steps: int = 28, features: int = 28, units: int = 20, classes: int = 10) -> bytes:
    """An int8 Keras-style LSTM classifier as TF's converter writes it (issue 12's pattern).

    QUANTIZE uint8->int8, UNIDIRECTIONAL_SEQUENCE_LSTM (int8 weights, int32 biases, an int8 output state and
    an int16 cell state as variables, 5 int16/int8 intermediates), RESHAPE, FULLY_CONNECTED, SOFTMAX,
    QUANTIZE int8->uint8. Compiler 16 mapped such a model 100%.
    """
    g = Graph()
    x = g.tensor("sequence", "uint8", [1, steps, features], scale=1 / 255, input=True)
    q = g.tensor("sequence_int8", "int8", [1, steps, features], scale=1 / 255, zero_point=-128)
    g.op("QUANTIZE", [x], [q])
    inter = [g.tensor(f"lstm/intermediate_{i}", "int16" if i < 4 else "int8", [], scale=2.0 ** -12)
             for i in range(5)]
    seq = g.tensor("lstm/output", "int8", [1, steps, units], scale=1 / 128)
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [q, *_lstm_tensors(g, features, units)], [seq], intermediates=inter)
    flat = g.tensor("flatten", "int8", [1, steps * units], scale=1 / 128)
    g.op("RESHAPE", [seq, g.const("flatten/shape", [1, steps * units])], [flat])
    rng = np.random.default_rng(3)
    w = g.tensor("dense/w", "int8", [classes, steps * units], data=rng.integers(-127, 127, (classes, steps * units)),
                 scale=0.01)
    b = g.tensor("dense/b", "int32", [classes], data=np.zeros(classes), scale=1e-4)
    logits = g.tensor("logits", "int8", [1, classes], scale=0.1)
    g.op("FULLY_CONNECTED", [flat, w, b], [logits], version=4)
    probs = g.tensor("probs", "int8", [1, classes], scale=1 / 256, zero_point=-128)
    g.op("SOFTMAX", [logits], [probs], version=2)
    out = g.tensor("probs_uint8", "uint8", [1, classes], scale=1 / 256, output=True)
    g.op("QUANTIZE", [probs], [out])
    return g.build()


def bidirectional_lstm(steps: int = 8, features: int = 16, units: int = 8) -> bytes:
    """An int8 BIDIRECTIONAL_SEQUENCE_LSTM with the 48 inputs of its kernel (forward and backward share weights)."""
    g = Graph()
    x = g.tensor("sequence", "int8", [1, steps, features], input=True)
    fw = _lstm_tensors(g, features, units)
    states = [g.tensor(f"bilstm/{d}_{kind}_state", dt, [1, units], scale=sc, variable=True)
              for d in ("fw", "bw") for kind, dt, sc in (("output", "int8", 1 / 128), ("cell", "int16", 2.0**-11))]
    y = g.tensor("bilstm/output", "int8", [1, steps, 2 * units], output=True)
    g.op("BIDIRECTIONAL_SEQUENCE_LSTM", [x, *fw[:17], *fw[:17], *states, *[-1] * 9], [y])
    return g.build()


def resize_model(in_hw: tuple[int, int], out_hw: tuple[int, int], *, op: str = "RESIZE_BILINEAR",
                 channels: int = 8) -> bytes:
    """int8 [1, h, w, c] -> a resize to [1, H, W, c]."""
    g = Graph()
    x = g.tensor("x", "int8", [1, *in_hw, channels], input=True)
    y = g.tensor("resized", "int8", [1, *out_hw, channels], output=True)
    g.op(op, [x, g.const("size", list(out_hw))], [y], version=3)
    return g.build()
