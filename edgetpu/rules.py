"""The Edge TPU's rules for one op on its own: can ``edgetpu_compiler`` 16 map it, and what is at risk.

:func:`judge` applies, to one operator of a .tflite model:

* the op table of Coral's "TensorFlow models on the Edge TPU" (:data:`SUPPORTED_OPS`)
  and each op's parameter limits (no fused activation on pooling or
  concatenation, equal x/y dilation, SOFTMAX 1-D and at most 16,000 elements,
  STRIDED_SLICE strides 1 and no ellipsis / new-axis masks, no reduction,
  padding, packing or splitting along the batch, ...);
* the tensor rules: 8-bit activations and parameters (int32 only for constant
  operands such as biases and shapes; inside UNIDIRECTIONAL_SEQUENCE_LSTM also
  the int16 cell state and layer-norm weights that int8 LSTMs carry), static
  shapes, at most the 3 innermost dimensions larger than 1;
* op versions the compiler's embedded TF Lite runtime knows (a too-new version
  makes it refuse the *whole* model);

and names known risks that do not stop the op from mapping: a resize whose
scale factor was not seen mapped (Coral: resizes "may not be mapped to avoid
loss in precision"; 2x upsampling maps, a 1x1 -> 33x33 resize stayed on the CPU)
and an LSTM with a large input feature size (compile failures reported around
900-1000 features, google-coral/edgetpu#598).

Where an op sits in the graph (CPU prefix, Edge TPU segment, CPU after it) is
:mod:`edgetpu.partition`'s job.

Example:
    >>> from edgetpu.rules import SUPPORTED_OPS, resize_scale
    >>> "UNIDIRECTIONAL_SEQUENCE_LSTM" in SUPPORTED_OPS, "BIDIRECTIONAL_SEQUENCE_LSTM" in SUPPORTED_OPS
    (True, False)
    >>> resize_scale((1, 1, 1, 256), (1, 33, 33, 256))
    (33.0, 33.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgetpu.model import (
    EDGETPU_CUSTOM_OP,
    Model,
    Operator,
    Subgraph,
    Tensor,
    activation_name,
)
from edgetpu.runtime_versions import OP_VERSION_FIRST_RELEASE, first_release, newer_than

__all__ = [
    "COMPILER_TFLITE_RUNTIME",
    "COMPILER_VERSION",
    "LSTM_FEATURE_RISK",
    "RESIZE_SEEN_MAPPED",
    "SOFTMAX_MAX_ELEMENTS",
    "SUPPORTED_OPS",
    "UNSUPPORTED_HINTS",
    "OpVerdict",
    "judge",
    "resize_scale",
    "version_problem",
]

#: The compiler whose rules are applied (latest release, 2021, frozen since).
COMPILER_VERSION = "16.0.384591198"

#: Newest TF Lite release whose op versions ``edgetpu_compiler`` 16.0 accepts.
#: Evidence (EDGETPU.md / google-coral/edgetpu issues): 16.0 rejects QUANTIZE v3
#: (first in 2.7.0, #879), CONV_2D v6 (2.9.0, #631), EXP v2 (2.12.0,
#: libedgetpu#71) and TRANSPOSE_CONV v4 (2.13.0, #845), while plain int8 CNN
#: op versions (<= 2.3.0) compile. Compiler 16.0's changelist (384591198,
#: mid-2021) postdates the TF 2.6 branch, so versions first released in 2.6.0
#: are taken as accepted and 2.7.0 onwards as rejected. The 2.6 boundary
#: itself is not confirmed by a public report (it matters only for int64 /
#: int16 / string op versions, never for int8 CNN ops).
COMPILER_TFLITE_RUNTIME = "2.6.0"

#: SOFTMAX on the Edge TPU: 1-D input of at most this many elements.
SOFTMAX_MAX_ELEMENTS = 16000

#: LSTM input feature size from which compile failures were reported (~900-1000, edgetpu#598).
LSTM_FEATURE_RISK = 900

#: Resize scale factors seen mapped by compiler 16 (2x upsampling, e.g. 6->12->24->48); others are a risk.
RESIZE_SEEN_MAPPED = (1.0, 2.0)

#: Ops of the Coral op table (UNIDIRECTIONAL_SEQUENCE_LSTM is its "LSTM (unidirectional only)").
SUPPORTED_OPS = frozenset(
    [
        "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
        "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM",
        "MINIMUM", "MUL", "SUB", "MAX_POOL_2D", "MEAN", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX",
        "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "RESHAPE", "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SPACE_TO_DEPTH", "SOFTMAX", "SPLIT", "SQUEEZE", "STRIDED_SLICE",
        "SUM", "RSQRT", "SQUARED_DIFFERENCE", "TRANSPOSE", "TRANSPOSE_CONV",
    ]
)

#: What to change when an unsupported op shows up (Keras-side advice).
UNSUPPORTED_HINTS = {
    "HARD_SWISH": "hard-swish is not supported: build MobileNetV3 with minimalistic=True "
    "(keras.applications.MobileNetV3Small/Large(..., minimalistic=True)) or use ReLU",
    "LEAKY_RELU": "LeakyReLU is not supported: use ReLU, or PReLU(shared_axes=[1, 2])",
    "DEQUANTIZE": "Dequantize inside the graph (Operation is working on an unsupported data type): "
    "a float section follows; convert the whole model to int8",
    "GELU": "GELU is not supported: use ReLU",
    "ELU": "ELU is not supported: use ReLU",
    "ARG_MAX": "ARG_MAX is not supported: drop it from the model and take the argmax of the output on the CPU",
    "ARG_MIN": "ARG_MIN is not supported: take it on the CPU after the model",
    "GATHER": "GATHER is not supported: replace indexing with SLICE / STRIDED_SLICE",
    "FLOOR_MOD": "FLOOR_MOD is not supported",
    "MIRROR_PAD": "MIRROR_PAD is not supported: use zero padding (ZeroPadding2D / padding='same')",
    "PADV2": "PADV2 (padding with a non-zero constant) is not supported: use zero padding",
    "BATCH_MATMUL": "BATCH_MATMUL is not supported: use Dense (FULLY_CONNECTED) with constant weights",
    "DIV": "DIV is not supported: multiply by a constant reciprocal instead",
    "SPACE_TO_BATCH_ND": "SPACE_TO_BATCH_ND (dilated conv lowered by the converter) is not supported",
    "BATCH_TO_SPACE_ND": "BATCH_TO_SPACE_ND is not supported",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "bidirectional LSTM is not supported: the Edge TPU maps unidirectional "
    "LSTMs only (google-coral/edgetpu#156); drop keras.layers.Bidirectional or run that layer on the CPU",
    "UNPACK": "UNPACK is not supported (an unrolled Keras LSTM lowers to it): convert the LSTM unfused "
    "to UNIDIRECTIONAL_SEQUENCE_LSTM instead",
}

_ACT_NONE = 0
_EIGHT_BIT = ("int8", "uint8")
_CONST_OK = ("int8", "uint8", "int32", "int64")
#: Packed types below 8 bits (AI Edge Quantizer's int4 weights; LiteRT's CPU kernels run them, the Edge TPU does not).
_BELOW_EIGHT_BIT = ("int4", "uint4", "int2")
_LSTM_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM")


@dataclass
class OpVerdict:
    """What the rules say of one op on its own.

    ``problems``: why it cannot map (empty: it can). ``risks``: known limits
    that may still keep it on the CPU (it is predicted mapped). ``refusal``:
    an op version so new that the compiler refuses the whole model. ``notes``:
    facts worth showing in the op's reason (a resize's scale factor).
    """

    problems: list[str] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refusal: str | None = None


class _Op:
    """One op with what the constraint functions read from it."""

    def __init__(self, m: Model, sg: Subgraph, op: Operator):
        self.m, self.sg, self.op = m, sg, op
        self.name = op.op
        self.o = op.options
        ins = op.inputs
        self.in0: Tensor | None = sg.tensors[ins[0]] if ins and ins[0] >= 0 else None
        self.rank0 = len(self.in0.shape) if self.in0 is not None else 0

    def tensor(self, pos: int) -> Tensor | None:
        ins = self.op.inputs
        return self.sg.tensors[ins[pos]] if pos < len(ins) and ins[pos] >= 0 else None

    def outputs(self) -> list[Tensor]:
        return [self.sg.tensors[i] for i in self.op.outputs if i >= 0]

    def const_ints(self, pos: int) -> list[int] | None:
        t = self.tensor(pos)
        if t is None or not t.is_constant:
            return None
        arr = self.m.tensor_data(t)
        if arr is None or arr.dtype.kind not in "iu":
            return None
        return [int(x) for x in np.asarray(arr).ravel().tolist()]


def _non1(shape: Sequence[int]) -> int:
    return sum(1 for d in shape if d != 1)


def _norm_axes(axes: Sequence[int], rank: int) -> list[int]:
    return [a + rank if a < 0 else a for a in axes]


def _fused_activation(x: _Op) -> list[str]:
    act = x.o.get("fusedActivationFunction", _ACT_NONE)
    if act == _ACT_NONE:
        return []
    why = (f"{x.name} with a fused activation ({activation_name(act)}) is not supported; "
           "the Edge TPU needs pooling/concatenation without fused activation")
    return [why]


def _concatenation(x: _Op) -> list[str]:
    p = _fused_activation(x)
    consts = [x.sg.tensors[i] for i in x.op.inputs if i >= 0 and x.sg.tensors[i].is_constant]
    if consts and len(x.op.inputs) != 2:
        p.append(f"CONCATENATION with a constant input needs exactly 2 inputs, found {len(x.op.inputs)}")
    for t in consts:
        arr = x.m.tensor_data(t)
        if arr is not None and np.any(np.asarray(arr) != 0):
            p.append(f"CONCATENATION with constant input '{t.name}' that is not all zeros")
    return p


def _conv(x: _Op) -> list[str]:
    dw, dh = x.o.get("dilationWFactor", 1), x.o.get("dilationHFactor", 1)
    if dw != dh:
        return [f"{x.name} with unequal dilation (x {dw}, y {dh}); the Edge TPU needs the same dilation in x and y"]
    return []


def _fully_connected(x: _Op) -> list[str]:
    p = []
    if x.o.get("weightsFormat", 0) != 0:
        p.append("FULLY_CONNECTED with a non-default weights format (only DEFAULT maps)")
    for t in x.outputs():
        if _non1(t.shape) > 1:
            p.append(f"FULLY_CONNECTED output '{t.name}' shape {list(t.shape)} is not 1-D "
                     "(the Edge TPU needs a 1-D output; flatten before the Dense layer)")
    return p


def _softmax(x: _Op) -> list[str]:
    if x.in0 is None:
        return []
    p = []
    if _non1(x.in0.shape) > 1:
        p.append(f"SOFTMAX input shape {list(x.in0.shape)} is not 1-D (the Edge TPU needs a 1-D input)")
    if x.in0.num_elements > SOFTMAX_MAX_ELEMENTS:
        p.append(f"SOFTMAX over {x.in0.num_elements} elements; the Edge TPU allows at most {SOFTMAX_MAX_ELEMENTS}")
    return p


def _strided_slice(x: _Op) -> list[str]:
    p = []
    strides = x.const_ints(3)
    if strides is None:
        p.append("STRIDED_SLICE strides are not a constant tensor")
    elif any(s != 1 for s in strides):
        p.append(f"STRIDED_SLICE strides {strides}; the Edge TPU needs all strides 1")
    for key, label in (("ellipsisMask", "ellipsis_mask"), ("newAxisMask", "new_axis_mask")):
        if x.o.get(key, 0):
            p.append(f"STRIDED_SLICE {label} {x.o.get(key)}; the Edge TPU needs 0")
    return p


def _reduction(x: _Op) -> list[str]:
    axes = x.const_ints(1)
    if axes is None:
        return [f"{x.name} axes are not a constant tensor"]
    if x.rank0 >= 2 and 0 in _norm_axes(axes, x.rank0):
        return [f"{x.name} reduces along the batch dimension (axes {axes}); not supported"]
    return []


def _pad(x: _Op) -> list[str]:
    pads = x.const_ints(1)
    if pads is None:
        return ["PAD paddings are not a constant tensor"]
    if x.rank0 >= 2 and len(pads) >= 2 and (pads[0] or pads[1]):
        return [f"PAD pads the batch dimension ({pads[:2]}); not supported"]
    return []


def _pack(x: _Op) -> list[str]:
    out = x.outputs()
    r = len(out[0].shape) if out else 0
    if r >= 2 and _norm_axes([int(x.o.get("axis", 0))], r)[0] == 0:
        return ["PACK along the batch dimension (axis 0) is not supported"]
    return []


def _split(x: _Op) -> list[str]:
    axes = x.const_ints(0)
    data = x.tensor(1)
    r = len(data.shape) if data is not None else 0
    if axes is None:
        return ["SPLIT axis is not a constant tensor"]
    if axes and r >= 2 and _norm_axes(axes, r)[0] == 0:
        return ["SPLIT along the batch dimension (axis 0) is not supported"]
    return []


def _prelu(x: _Op) -> list[str]:
    alpha = x.tensor(1)
    if alpha is not None and _non1(alpha.shape) > 1:
        return [f"PRELU alpha shape {list(alpha.shape)} is not 1-D (in Keras use PReLU(shared_axes=[1, 2]))"]
    return []


_CONSTRAINTS: dict[str, Callable[[_Op], list[str]]] = {
    "AVERAGE_POOL_2D": _fused_activation,
    "MAX_POOL_2D": _fused_activation,
    "CONCATENATION": _concatenation,
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _fully_connected,
    "SOFTMAX": _softmax,
    "STRIDED_SLICE": _strided_slice,
    "MEAN": _reduction,
    "SUM": _reduction,
    "REDUCE_MAX": _reduction,
    "REDUCE_MIN": _reduction,
    "PAD": _pad,
    "PACK": _pack,
    "SPLIT": _split,
    "PRELU": _prelu,
}


def resize_scale(in_shape: Sequence[int], out_shape: Sequence[int]) -> tuple[float, float] | None:
    """(height, width) scale factor of an NHWC resize, or None when the shapes are not 4-D."""
    if len(in_shape) != 4 or len(out_shape) != 4 or min(in_shape[1:3]) <= 0:
        return None
    return out_shape[1] / in_shape[1], out_shape[2] / in_shape[2]


def _resize(x: _Op, v: OpVerdict) -> None:
    outs = x.outputs()
    if x.in0 is None or not outs:
        return
    scale = resize_scale(x.in0.shape, outs[0].shape)
    if scale is None:
        return
    (h, w), (oh, ow) = x.in0.shape[1:3], outs[0].shape[1:3]
    text = f"{h}x{w} -> {oh}x{ow}, scale {scale[0]:g}x{scale[1]:g}"
    v.notes.append(f"resize {text}")
    if any(s not in RESIZE_SEEN_MAPPED for s in scale):
        v.risks.append(
            f"{x.name} op #{x.op.index} ({text}): edgetpu_compiler may keep it on the CPU to avoid loss in "
            "precision (Coral's op table; only 2x upsampling has been seen mapped, and a 1x1 -> 33x33 resize "
            "stayed on the CPU with everything after it)"
        )


def _lstm(x: _Op, v: OpVerdict) -> None:
    if x.in0 is None or not x.in0.shape:
        return
    features = x.in0.shape[-1]
    v.notes.append(f"input feature size {features}")
    if features >= LSTM_FEATURE_RISK:
        v.risks.append(
            f"{x.name} op #{x.op.index} has an input feature size of {features}: compiling LSTMs with ~900-1000 "
            "input features has been reported to fail (google-coral/edgetpu#598); reduce the features before "
            "the LSTM (a Dense or Conv projection)"
        )


_RISKS: dict[str, Callable[[_Op, OpVerdict], None]] = {
    "RESIZE_BILINEAR": _resize,
    "RESIZE_NEAREST_NEIGHBOR": _resize,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
}


def _dtype_problem(t: Tensor, op_name: str) -> str | None:
    """Why a tensor's type keeps the op off the TPU, or None."""
    if t.is_constant:
        ok = _CONST_OK + ("int16",) if op_name in _LSTM_OPS else _CONST_OK
        if t.dtype in ok:
            return None
        kind = "float weights: model not quantized" if t.dtype.startswith("float") else "unsupported type"
        if t.dtype in _BELOW_EIGHT_BIT or t.dtype == "int16":
            kind = (f"{t.dtype[-1]}-bit weights, e.g. from quantization='int4_weights'/'int4_int8': they do not "
                    f"run on the Edge TPU, which runs 8-bit parameters only; convert with quantization='int8'") \
                if t.dtype in _BELOW_EIGHT_BIT else "16-bit weights do not run on the Edge TPU"
        return f"constant tensor '{t.name}' is {t.dtype} ({kind}); the Edge TPU needs int8/uint8 parameters"
    if t.dtype in _EIGHT_BIT or (t.dtype == "int16" and t.is_variable and op_name in _LSTM_OPS):
        return None  # an int8 LSTM keeps its cell state in int16, inside the op
    if t.dtype == "int16":
        why = "16-bit activations (int16x8) do not run on the Edge TPU"
    elif t.dtype in _BELOW_EIGHT_BIT:
        why = "4-bit tensors do not run on the Edge TPU"
    elif t.dtype.startswith("float"):
        why = "not quantized"
    else:
        why = "unsupported data type"
    return f"tensor '{t.name}' is {t.dtype} ({why}); the Edge TPU needs int8/uint8"


def _tensor_problems(sg: Subgraph, op: Operator) -> list[str]:
    p: list[str] = []
    seen = set()
    for i in op.inputs + op.outputs:
        if i < 0 or i in seen:
            continue
        seen.add(i)
        t = sg.tensors[i]
        why = _dtype_problem(t, op.op)
        if why:
            p.append(why)
        if t.is_constant:
            continue
        sig = t.shape_signature
        if sig is not None and any(d < 0 for d in sig[1:]):
            p.append(f"tensor '{t.name}' has a dynamic shape (shape_signature {list(sig)}); sizes must be constant")
        if len(t.shape) > 3 and any(d != 1 for d in t.shape[:-3]):
            p.append(
                f"tensor '{t.name}' shape {list(t.shape)}: Tensor has unsupported rank "
                "(only the 3 innermost dimensions may be larger than 1)"
            )
    return p


def _too_new_for_compiler(release: str | None) -> bool:
    return newer_than(release, COMPILER_TFLITE_RUNTIME)


def version_problem(op: Operator) -> str | None:
    """Why ``edgetpu_compiler`` 16 refuses this op's version (and so the whole model), or None."""
    rel = first_release(op.op, op.version)
    if not _too_new_for_compiler(rel):
        return None
    ok = [v for v, r in OP_VERSION_FIRST_RELEASE.get(op.op, {}).items() if not _too_new_for_compiler(r)]
    first = rel.removeprefix(">")
    when = f"newer than {first}" if rel.startswith(">") else f"first in TF Lite {first}"
    keep = f" (highest accepted: v{max(ok)})" if ok else ""
    return (
        f"{op.op} version {op.version} ({when}) is newer than edgetpu_compiler {COMPILER_VERSION.split('.')[0]}.0 "
        f"accepts: it embeds TF Lite ~{COMPILER_TFLITE_RUNTIME} and fails the whole model with "
        f"\"Didn't find op for builtin opcode '{op.op}' version '{op.version}'\"{keep}"
    )


def judge(m: Model, sg: Subgraph, op: Operator) -> OpVerdict:
    """Apply the Edge TPU's rules to one op of subgraph ``sg`` of model ``m``."""
    v = OpVerdict(refusal=version_problem(op))
    if op.custom_code == EDGETPU_CUSTOM_OP:
        return v
    if v.refusal:
        v.problems.append(v.refusal)
    if op.is_custom:
        v.problems.append(f"custom op '{op.op}' is not supported by the Edge TPU (Operation not supported)")
    elif op.op not in SUPPORTED_OPS:
        hint = UNSUPPORTED_HINTS.get(op.op)
        v.problems.append(f"{op.op}: Operation not supported" + (f" ({hint})" if hint else ""))
    else:
        x = _Op(m, sg, op)
        constraint = _CONSTRAINTS.get(op.op)
        if constraint is not None:
            v.problems.extend(constraint(x))
        risk = _RISKS.get(op.op)
        if risk is not None:
            risk(x, v)
    v.problems.extend(_tensor_problems(sg, op))
    return v
