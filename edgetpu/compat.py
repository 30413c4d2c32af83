"""Predict, before compiling, what ``edgetpu_compiler`` 16.0 will map to the Edge TPU.

:func:`check` reads a .tflite model (no TensorFlow, no compiler) and applies
the Edge TPU's documented rules op by op, in execution order:

* every tensor 8-bit (int8/uint8); int32 only for constant operands (biases,
  shapes, axes); no 16-bit activations;
* static shapes (a ``-1`` in a shape signature outside the batch is dynamic;
  a dynamic *batch* only warns, see below);
* at most the 3 innermost dimensions larger than 1;
* only the supported ops, with their parameter limits (no fused activation on
  pooling / concatenation, equal x/y dilation, SOFTMAX 1-D and at most 16,000
  elements, STRIDED_SLICE strides 1 and no ellipsis / new-axis masks, no
  reduction / padding / packing / splitting along the batch, ...);
* op versions the compiler's embedded TF Lite runtime knows (see
  :data:`OP_VERSION_FIRST_RELEASE` and :data:`COMPILER_TFLITE_RUNTIME`).

Partitioning follows the compiler: at the first op that cannot map, the graph
is cut once; that op and everything after it run on the CPU. A float Quantize
at the model input and a Dequantize at the model output run on the CPU
without cutting the graph (they are not counted in ``fraction_mapped``).

Example:
    >>> import edgetpu
    >>> r = edgetpu.check("model_int8.tflite")               # doctest: +SKIP
    >>> r.status, r.fraction_mapped, r.cut_index              # doctest: +SKIP
    (0, 1.0, None)
    >>> print(r.format_table())                               # doctest: +SKIP

Sources: Coral "TensorFlow models on the Edge TPU" (requirements and op
table), TensorFlow ``tensorflow/lite/tools/versioning/runtime_version.cc``
(op version -> first TF release) and public google-coral/edgetpu issues, as
collected in the project's EDGETPU.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgetpu.model import EDGETPU_CUSTOM_OP, Model, Operator, Subgraph, Tensor, read_model

__all__ = [
    "COMPILER_VERSION",
    "COMPILER_TFLITE_RUNTIME",
    "ON_CHIP_CACHE_BYTES",
    "OP_VERSION_FIRST_RELEASE",
    "SUPPORTED_OPS",
    "CheckResult",
    "OpRecord",
    "check",
    "first_release",
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

#: Edge TPU on-chip memory for caching parameters ("about 8 MB").
ON_CHIP_CACHE_BYTES = 8 * 1024 * 1024

#: SOFTMAX on the Edge TPU: 1-D input of at most this many elements.
SOFTMAX_MAX_ELEMENTS = 16000

#: Ops of the Coral op table. Constraints are applied in :func:`_op_constraints`.
SUPPORTED_OPS = frozenset(
    """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D EXPAND_DIMS FULLY_CONNECTED
    L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MINIMUM MUL SUB MAX_POOL_2D MEAN PACK PAD PRELU QUANTIZE
    REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 TANH RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    SLICE SPACE_TO_DEPTH SOFTMAX SPLIT SQUEEZE STRIDED_SLICE SUM RSQRT SQUARED_DIFFERENCE TRANSPOSE
    TRANSPOSE_CONV""".split()
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
}

# tensorflow/lite/tools/versioning/runtime_version.cc (TF master, 2024): the first
# TF release whose TF Lite runtime runs each (op, version). Only ops the Edge TPU
# maps or that int8 converters commonly emit are listed; versions beyond the
# last listed one are newer than this table and treated as too new.
_RV = {
    "ADD": "1.5.0 1.14.0 2.4.0 2.6.0 2.13.0",
    "ARG_MAX": "1.9.0 1.14.0 2.9.0",
    "ARG_MIN": "1.9.0 1.14.0 2.9.0",
    "AVERAGE_POOL_2D": "1.5.0 1.14.0 2.3.0",
    "BATCH_MATMUL": "2.3.0 2.3.0 2.4.0 2.5.0",
    "BATCH_TO_SPACE_ND": "1.6.0 1.14.0 2.3.0 2.12.0",
    "CAST": "1.5.0 2.7.0 2.8.0 2.9.0 2.12.0 2.15.0",
    "CONCATENATION": "1.5.0 1.14.0 2.3.0 2.14.0",
    "CONV_2D": "1.5.0 1.14.0 1.14.0 2.3.0 2.4.0 2.9.0 2.11.0 2.15.0",
    "DEPTH_TO_SPACE": "2.1.0 2.5.0",
    "DEPTHWISE_CONV_2D": "1.5.0 1.12.0 1.14.0 2.2.0 2.3.0 2.3.0 2.11.0",
    "DEQUANTIZE": "1.13.1 1.14.0 1.15.0 2.2.0 2.7.0 2.18.0",
    "DIV": "1.6.0 2.3.0",
    "ELU": "1.14.0",
    "EXP": "1.7.0 2.12.0",
    "EXPAND_DIMS": "1.10.0",
    "FLOOR_MOD": "1.13.0 2.13.0",
    "FULLY_CONNECTED": "1.5.0 1.10.0 1.14.0 1.14.0 2.0.0 2.1.0 2.3.0 2.3.0 2.3.0 2.11.0 2.15.0 2.17.0 2.18.0",
    "GATHER": "1.6.0 1.14.0 1.15.0 2.4.0 2.5.0 2.13.0 2.15.0",
    "GELU": "2.9.0 2.9.0",
    "HARD_SWISH": "1.15.0",
    "L2_NORMALIZATION": "1.5.0 1.14.0",
    "LEAKY_RELU": "1.13.1 2.3.0",
    "LOGISTIC": "1.14.0 1.14.0 2.3.0",
    "LSTM": "1.7.0 1.10.0 1.14.0 2.3.0",
    "MAX_POOL_2D": "1.5.0 1.14.0 2.3.0",
    "MAXIMUM": "1.14.0 1.14.0 2.3.0 2.3.0",
    "MEAN": "1.6.0 1.14.0 2.4.0",
    "MINIMUM": "1.14.0 1.14.0 2.3.0 2.3.0",
    "MIRROR_PAD": "1.13.1 2.3.0 2.12.0",
    "MUL": "1.5.0 1.14.0 1.15.0 2.3.0 2.6.0 2.11.0 2.13.0",
    "PACK": "1.11.0 1.14.0 2.3.0 2.13.0",
    "PAD": "1.5.0 1.14.0 2.4.0 2.6.0",
    "PADV2": "1.9.0 1.14.0 2.4.0 2.6.0",
    "PRELU": "1.8.0",
    "QUANTIZE": "1.14.0 1.15.0 2.7.0",
    "REDUCE_MAX": "1.11.0 1.14.0 2.5.0",
    "REDUCE_MIN": "1.11.0 1.14.0 2.5.0",
    "RELU": "1.5.0 2.1.0 2.5.0",
    "RELU6": "1.5.0 1.14.0 2.5.0",
    "RELU_N1_TO_1": "1.5.0",
    "RESHAPE": "1.5.0",
    "RESIZE_BILINEAR": "1.7.0 1.14.0 2.2.0 2.5.0",
    "RESIZE_NEAREST_NEIGHBOR": "1.13.1 1.14.0 2.3.0 2.4.0",
    "RSQRT": "1.10.0 2.5.0 2.15.0",
    "SLICE": "1.14.0 1.14.0 1.14.0 2.4.0 2.5.0 2.14.0",
    "SOFTMAX": "1.5.0 1.14.0 2.3.0",
    "SPACE_TO_BATCH_ND": "1.6.0 1.14.0 2.3.0 2.12.0",
    "SPACE_TO_DEPTH": "1.5.0 1.14.0",
    "SPLIT": "1.5.0 1.14.0 1.14.0 2.3.0",
    "SPLIT_V": "1.13.1 2.3.0",
    "SQUARED_DIFFERENCE": "1.13.1 2.5.0",
    "SQUEEZE": "1.6.0 2.5.0",
    "STRIDED_SLICE": "1.6.0 1.14.0 2.1.0 2.2.0 2.5.0 2.6.0 2.14.0 2.14.0",
    "SUB": "1.6.0 1.14.0 2.3.0 2.4.0 2.4.0",
    "SUM": "1.10.0 1.15.0",
    "TANH": "1.14.0 1.14.0 2.3.0",
    "TRANSPOSE": "1.6.0 1.14.0 1.15.0 2.3.0 2.4.0 2.12.0",
    "TRANSPOSE_CONV": "1.9.0 2.2.0 2.3.0 2.13.0 2.15.0",
}

#: ``{op: {version: first TF release}}`` from TensorFlow's runtime_version.cc.
OP_VERSION_FIRST_RELEASE: Dict[str, Dict[int, str]] = {
    op: {i + 1: v for i, v in enumerate(s.split())} for op, s in _RV.items()
}

_ACT_NONE = 0
_EIGHT_BIT = ("int8", "uint8")
_CONST_OK = ("int8", "uint8", "int32", "int64")


def _vkey(v: str) -> Tuple[int, ...]:
    out = []
    for part in v.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def first_release(op: str, version: int) -> Optional[str]:
    """First TF release whose TF Lite runtime runs ``op`` at ``version``.

    Returns None when the op is not in the table; ``">X"`` when the version is
    newer than the table's last entry for that op (first release X).
    """
    table = OP_VERSION_FIRST_RELEASE.get(op)
    if not table:
        return None
    if version in table:
        return table[version]
    if version > max(table):
        return ">" + table[max(table)]
    return None


def _too_new(release: Optional[str]) -> bool:
    if release is None:
        return False
    if release.startswith(">"):
        return True
    return _vkey(release) > _vkey(COMPILER_TFLITE_RUNTIME)


def _max_ok_version(op: str) -> Optional[int]:
    table = OP_VERSION_FIRST_RELEASE.get(op, {})
    ok = [v for v, rel in table.items() if not _too_new(rel)]
    return max(ok) if ok else None


@dataclass
class OpRecord:
    """One op of the model, with the prediction for it.

    ``mapped`` is True when the op will run on the Edge TPU. ``reason`` says
    why not (or "mapped to the Edge TPU"); ``problems`` lists the op's own
    rule violations even when it sits after the cut (its reason then starts
    with "after the cut").
    """

    index: int
    op: str
    version: int
    input_dtypes: List[str]
    input_shapes: List[List[int]]
    output_dtypes: List[str]
    output_shapes: List[List[int]]
    mapped: bool = False
    reason: str = ""
    problems: List[str] = field(default_factory=list)
    boundary: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "version": self.version,
            "input_dtypes": self.input_dtypes,
            "input_shapes": self.input_shapes,
            "output_dtypes": self.output_dtypes,
            "output_shapes": self.output_shapes,
            "mapped": self.mapped,
            "reason": self.reason,
            "problems": self.problems,
            "boundary": self.boundary,
        }


@dataclass
class CheckResult:
    """What :func:`check` predicts for one model.

    ``status`` (also ``exit_code``): 0 every op maps, 1 some ops map (the rest
    run on the CPU), 2 unusable (nothing maps, e.g. a float model, or the
    compiler would refuse the model, e.g. an op version it does not know).
    ``fraction_mapped`` excludes the float-I/O Quantize/Dequantize at the
    model boundary, which always run on the CPU.
    """

    model: str
    ops: List[OpRecord]
    fraction_mapped: float
    cut_index: Optional[int]
    parameter_bytes: int
    fits_on_chip: bool
    warnings: List[str]
    status: int
    verdict: str
    min_runtime_version: Optional[str] = None
    required_runtime: Optional[str] = None
    compiler_version: str = COMPILER_VERSION
    on_chip_cache_bytes: int = ON_CHIP_CACHE_BYTES
    subgraphs: int = 1

    @property
    def exit_code(self) -> int:
        return self.status

    @property
    def ops_on_tpu(self) -> int:
        return sum(1 for r in self.ops if r.mapped)

    @property
    def ops_on_cpu(self) -> int:
        return sum(1 for r in self.ops if not r.mapped)

    @property
    def cut_op(self) -> Optional[str]:
        return None if self.cut_index is None else self.ops[self.cut_index].op

    @property
    def fully_mapped(self) -> bool:
        return self.status == 0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "status": self.status,
            "verdict": self.verdict,
            "fraction_mapped": self.fraction_mapped,
            "ops_on_tpu": self.ops_on_tpu,
            "ops_on_cpu": self.ops_on_cpu,
            "cut_index": self.cut_index,
            "cut_op": self.cut_op,
            "parameter_bytes": self.parameter_bytes,
            "fits_on_chip": self.fits_on_chip,
            "on_chip_cache_bytes": self.on_chip_cache_bytes,
            "min_runtime_version": self.min_runtime_version,
            "required_runtime": self.required_runtime,
            "compiler_version": self.compiler_version,
            "compiler_tflite_runtime": COMPILER_TFLITE_RUNTIME,
            "subgraphs": self.subgraphs,
            "warnings": list(self.warnings),
            "ops": [r.to_dict() for r in self.ops],
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def format_table(self, max_reason: int = 100) -> str:
        """A readable table: one row per op, then the summary and warnings."""

        def ts(dtypes: Sequence[str], shapes: Sequence[Sequence[int]]) -> str:
            if not dtypes:
                return "-"
            return f"{dtypes[0]}[{','.join(str(d) for d in shapes[0])}]"

        rows = [("#", "op", "v", "input", "output", "where", "reason")]
        for r in self.ops:
            where = "TPU" if r.mapped else "CPU"
            reason = r.reason if len(r.reason) <= max_reason else r.reason[: max_reason - 3] + "..."
            rows.append(
                (
                    str(r.index),
                    r.op,
                    str(r.version),
                    ts(r.input_dtypes, r.input_shapes),
                    ts(r.output_dtypes, r.output_shapes),
                    where,
                    reason,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = [f"Edge TPU check of {self.model} (rules of edgetpu_compiler {COMPILER_VERSION})"]
        for row in rows:
            cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 6)] + [row[6]]
            lines.append("  ".join(cells).rstrip())
        n_core = sum(1 for r in self.ops if not r.boundary)
        n_map = sum(1 for r in self.ops if r.mapped and not r.boundary)
        lines.append("")
        lines.append(f"Mapped to the Edge TPU: {n_map}/{n_core} ops ({self.fraction_mapped:.0%})")
        if self.cut_index is not None:
            lines.append(
                f"Cut at op #{self.cut_index} ({self.cut_op}): it and every op after it run on the CPU"
            )
        mib = self.parameter_bytes / 2**20
        cap = self.on_chip_cache_bytes / 2**20
        fit = "fits" if self.fits_on_chip else "does NOT fit; the rest streams from host memory"
        lines.append(f"Parameters on the TPU: {mib:.2f} MiB of ~{cap:.0f} MiB on-chip cache ({fit})")
        if self.min_runtime_version:
            lines.append(f"min_runtime_version (metadata): {self.min_runtime_version}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        lines.append(f"Verdict: {self.verdict} (exit {self.status})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _active(sg: Subgraph, idxs: Sequence[int]) -> List[Tensor]:
    return [sg.tensors[i] for i in idxs if i >= 0]


def _non1(shape: Sequence[int]) -> int:
    return sum(1 for d in shape if d != 1)


def _const_ints(m: Model, sg: Subgraph, op: Operator, pos: int) -> Optional[List[int]]:
    if pos >= len(op.inputs) or op.inputs[pos] < 0:
        return None
    t = sg.tensors[op.inputs[pos]]
    if not t.is_constant:
        return None
    arr = m.tensor_data(t)
    if arr is None or arr.dtype.kind not in "iu":
        return None
    return [int(x) for x in np.asarray(arr).ravel().tolist()]


def _norm_axes(axes: Sequence[int], rank: int) -> List[int]:
    return [a + rank if a < 0 else a for a in axes]


def _act_name(code: Any) -> str:
    from edgetpu.model import _names

    return _names("ActivationFunctionType").get(int(code), str(code))


def _op_constraints(m: Model, sg: Subgraph, op: Operator) -> List[str]:
    """Parameter limits of the Coral op table for a supported op."""
    p: List[str] = []
    o = op.options
    name = op.op
    ins = op.inputs
    in0 = sg.tensors[ins[0]] if ins and ins[0] >= 0 else None
    rank0 = len(in0.shape) if in0 is not None else 0

    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
        act = o.get("fusedActivationFunction", _ACT_NONE)
        if act != _ACT_NONE:
            p.append(f"{name} with a fused activation ({_act_name(act)}) is not supported; "
                     "the Edge TPU needs pooling/concatenation without fused activation")
    if name == "CONCATENATION":
        consts = [sg.tensors[i] for i in ins if i >= 0 and sg.tensors[i].is_constant]
        if consts:
            if len(ins) != 2:
                p.append(f"CONCATENATION with a constant input needs exactly 2 inputs, found {len(ins)}")
            for t in consts:
                arr = m.tensor_data(t)
                if arr is not None and np.any(np.asarray(arr) != 0):
                    p.append(f"CONCATENATION with constant input '{t.name}' that is not all zeros")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dw, dh = o.get("dilationWFactor", 1), o.get("dilationHFactor", 1)
        if dw != dh:
            p.append(f"{name} with unequal dilation (x {dw}, y {dh}); the Edge TPU needs the same dilation in x and y")
    if name == "FULLY_CONNECTED":
        wf = o.get("weightsFormat", 0)
        if wf != 0:
            p.append("FULLY_CONNECTED with a non-default weights format (only DEFAULT maps)")
        for t in _active(sg, op.outputs):
            if _non1(t.shape) > 1:
                p.append(f"FULLY_CONNECTED output '{t.name}' shape {list(t.shape)} is not 1-D "
                         "(the Edge TPU needs a 1-D output; flatten before the Dense layer)")
    if name == "SOFTMAX" and in0 is not None:
        n = int(np.prod(in0.shape)) if in0.shape else 1
        if _non1(in0.shape) > 1:
            p.append(f"SOFTMAX input shape {list(in0.shape)} is not 1-D (the Edge TPU needs a 1-D input)")
        if n > SOFTMAX_MAX_ELEMENTS:
            p.append(f"SOFTMAX over {n} elements; the Edge TPU allows at most {SOFTMAX_MAX_ELEMENTS}")
    if name == "STRIDED_SLICE":
        strides = _const_ints(m, sg, op, 3)
        if strides is None:
            p.append("STRIDED_SLICE strides are not a constant tensor")
        elif any(s != 1 for s in strides):
            p.append(f"STRIDED_SLICE strides {strides}; the Edge TPU needs all strides 1")
        if o.get("ellipsisMask", 0):
            p.append(f"STRIDED_SLICE ellipsis_mask {o.get('ellipsisMask')}; the Edge TPU needs 0")
        if o.get("newAxisMask", 0):
            p.append(f"STRIDED_SLICE new_axis_mask {o.get('newAxisMask')}; the Edge TPU needs 0")
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = _const_ints(m, sg, op, 1)
        if axes is None:
            p.append(f"{name} axes are not a constant tensor")
        elif rank0 >= 2 and 0 in _norm_axes(axes, rank0):
            p.append(f"{name} reduces along the batch dimension (axes {axes}); not supported")
    if name == "PAD":
        pads = _const_ints(m, sg, op, 1)
        if pads is None:
            p.append("PAD paddings are not a constant tensor")
        elif rank0 >= 2 and len(pads) >= 2 and (pads[0] or pads[1]):
            p.append(f"PAD pads the batch dimension ({pads[:2]}); not supported")
    if name == "PACK":
        out = _active(sg, op.outputs)
        r = len(out[0].shape) if out else 0
        axis = int(o.get("axis", 0))
        if r >= 2 and _norm_axes([axis], r)[0] == 0:
            p.append("PACK along the batch dimension (axis 0) is not supported")
    if name == "SPLIT":
        axes = _const_ints(m, sg, op, 0)
        x = sg.tensors[ins[1]] if len(ins) > 1 and ins[1] >= 0 else None
        r = len(x.shape) if x is not None else 0
        if axes is None:
            p.append("SPLIT axis is not a constant tensor")
        elif r >= 2 and _norm_axes(axes, r)[0] == 0:
            p.append("SPLIT along the batch dimension (axis 0) is not supported")
    if name == "PRELU" and len(ins) > 1 and ins[1] >= 0:
        alpha = sg.tensors[ins[1]]
        if _non1(alpha.shape) > 1:
            p.append(f"PRELU alpha shape {list(alpha.shape)} is not 1-D "
                     "(in Keras use PReLU(shared_axes=[1, 2]))")
    return p


def _tensor_problems(sg: Subgraph, op: Operator, skip: Sequence[int] = ()) -> List[str]:
    p: List[str] = []
    seen = set()
    for i in list(op.inputs) + list(op.outputs):
        if i < 0 or i in seen or i in skip:
            continue
        seen.add(i)
        t = sg.tensors[i]
        if t.is_constant:
            if t.dtype not in _CONST_OK:
                kind = "float weights: model not quantized" if t.dtype.startswith("float") else "unsupported type"
                p.append(f"constant tensor '{t.name}' is {t.dtype} ({kind}); the Edge TPU needs int8/uint8 parameters")
            continue
        if t.dtype not in _EIGHT_BIT:
            if t.dtype == "int16":
                why = "16-bit activations (int16x8) are not supported"
            elif t.dtype.startswith("float"):
                why = "not quantized"
            else:
                why = "unsupported data type"
            p.append(f"tensor '{t.name}' is {t.dtype} ({why}); the Edge TPU needs int8/uint8")
        sig = t.shape_signature
        if sig is not None and any(d < 0 for d in sig[1:]):
            p.append(f"tensor '{t.name}' has a dynamic shape (shape_signature {list(sig)}); sizes must be constant")
        if len(t.shape) > 3 and any(d != 1 for d in t.shape[:-3]):
            p.append(
                f"tensor '{t.name}' shape {list(t.shape)}: Tensor has unsupported rank "
                "(only the 3 innermost dimensions may be larger than 1)"
            )
    return p


def _version_problem(op: Operator) -> Optional[str]:
    rel = first_release(op.op, op.version)
    if not _too_new(rel):
        return None
    ok = _max_ok_version(op.op)
    first = rel[1:] if rel.startswith(">") else rel
    when = f"newer than {first}" if rel.startswith(">") else f"first in TF Lite {first}"
    keep = f" (highest accepted: v{ok})" if ok else ""
    return (
        f"{op.op} version {op.version} ({when}) is newer than edgetpu_compiler {COMPILER_VERSION.split('.')[0]}.0 "
        f"accepts: it embeds TF Lite ~{COMPILER_TFLITE_RUNTIME} and fails the whole model with "
        f"\"Didn't find op for builtin opcode '{op.op}' version '{op.version}'\"{keep}"
    )


def _boundary(sg: Subgraph, op: Operator) -> bool:
    """Float-input Quantize / float-output Dequantize at the model's edges."""
    if op.op == "QUANTIZE" and op.inputs and op.inputs[0] in sg.inputs:
        return sg.tensors[op.inputs[0]].dtype.startswith("float")
    if op.op == "DEQUANTIZE" and op.outputs and op.outputs[0] in sg.outputs:
        return sg.tensors[op.inputs[0]].dtype in _EIGHT_BIT
    return False


def _record(sg: Subgraph, op: Operator) -> OpRecord:
    ins = _active(sg, op.inputs)
    # Show data inputs first: constants (weights, shapes) after activations.
    ins = [t for t in ins if not t.is_constant] + [t for t in ins if t.is_constant]
    outs = _active(sg, op.outputs)
    return OpRecord(
        index=op.index,
        op=op.op,
        version=op.version,
        input_dtypes=[t.dtype for t in ins],
        input_shapes=[list(t.shape) for t in ins],
        output_dtypes=[t.dtype for t in outs],
        output_shapes=[list(t.shape) for t in outs],
    )


def check(model) -> CheckResult:
    """Predict which ops of a .tflite model ``edgetpu_compiler`` 16.0 maps to the Edge TPU.

    Args:
        model: path to a .tflite file, its bytes, or an :class:`edgetpu.model.Model`.

    Returns:
        A :class:`CheckResult`; see its ``status``, ``ops``, ``cut_index``,
        ``warnings``, ``format_table()`` and ``to_dict()``.

    Raises:
        InvalidModelError: the input is not a readable .tflite model.
    """
    m = read_model(model)
    sg = m.main
    warnings: List[str] = []
    records: List[OpRecord] = []
    refused: List[str] = []  # problems that make the compiler refuse the whole model
    cut: Optional[int] = None
    compiled = m.has_edgetpu_custom_op

    for op in sg.operators:
        rec = _record(sg, op)
        problems: List[str] = []
        vp = _version_problem(op)
        if op.custom_code == EDGETPU_CUSTOM_OP:
            rec.mapped = cut is None
            rec.reason = "already compiled for the Edge TPU (edgetpu-custom-op)"
            records.append(rec)
            continue
        if _boundary(sg, op) and vp is None:
            rec.boundary = True
            rec.reason = (
                "float input quantized on the CPU (allowed at the model input; does not cut the graph)"
                if op.op == "QUANTIZE"
                else "output dequantized to float on the CPU (allowed at the model output; does not cut the graph)"
            )
            records.append(rec)
            continue
        if vp:
            problems.append(vp)
            refused.append(f"op #{op.index} {vp}")
        if op.is_custom:
            problems.append(f"custom op '{op.op}' is not supported by the Edge TPU (Operation not supported)")
        elif op.op not in SUPPORTED_OPS:
            hint = UNSUPPORTED_HINTS.get(op.op)
            problems.append(f"{op.op}: Operation not supported" + (f" ({hint})" if hint else ""))
        else:
            problems.extend(_op_constraints(m, sg, op))
        problems.extend(_tensor_problems(sg, op))
        rec.problems = problems
        if cut is None and problems:
            cut = op.index
            rec.reason = "; ".join(problems)
        elif cut is not None:
            own = f"; its own issue: {'; '.join(problems)}" if problems else ""
            rec.reason = f"after the cut at op #{cut} ({sg.operators[cut].op}): runs on the CPU{own}"
        else:
            rec.mapped = True
            rec.reason = "mapped to the Edge TPU"
        records.append(rec)

    core = [r for r in records if not r.boundary]
    n_mapped = sum(1 for r in core if r.mapped)
    fraction = n_mapped / len(core) if core else 0.0

    # Parameters the TPU caches: constant operands of mapped ops (each buffer once).
    bufs: Dict[int, int] = {}
    for r, op in zip(records, sg.operators):
        if r.mapped:
            for i in op.inputs:
                if i >= 0 and sg.tensors[i].is_constant:
                    t = sg.tensors[i]
                    bufs[t.buffer] = t.buffer_bytes
    parameter_bytes = int(sum(bufs.values()))
    fits = parameter_bytes <= ON_CHIP_CACHE_BYTES

    # Model-level warnings.
    float_ops = [r for r in core if any("not quantized" in p for p in r.problems)]
    if float_ops and n_mapped == 0:
        warnings.append(
            f"model is not quantized ({len(float_ops)} of {len(core)} ops use float tensors): edgetpu_compiler "
            "refuses it ('Model not quantized'). Convert with full-integer quantization, e.g. "
            "keras_compress.convert.to_tflite(model, target=\"edgetpu\")"
        )
    elif float_ops:
        warnings.append(
            f"{len(float_ops)} op(s) use float tensors (first: op #{float_ops[0].index} {float_ops[0].op}); "
            "they run on the CPU. Convert the whole model to int8 (TFLITE_BUILTINS_INT8 only)"
        )
    dyn = [sg.tensors[i] for i in sg.inputs if sg.tensors[i].shape_signature and sg.tensors[i].shape_signature[0] < 0]
    if dyn or any(t.shape_signature and t.shape_signature[0] < 0 for t in sg.tensors if not t.is_constant):
        names = ", ".join(f"'{t.name}' {list(t.shape_signature)}" for t in dyn) or "intermediate tensors"
        warnings.append(
            f"dynamic batch dimension (shape_signature -1) on {names}: the Edge TPU needs static shapes and "
            "edgetpu_compiler can fail with 'Attempting to use a delegate that only supports static-sized "
            "tensors'. Fix: convert with a static batch of 1 - keras_compress.convert.to_tflite(model, "
            "target=\"edgetpu\") does this (or export with input_signature=[tf.TensorSpec((1, ...))])"
        )
    if refused:
        warnings.append("edgetpu_compiler will refuse the whole model ('Invalid model ... Model could not be "
                        f"parsed'): {refused[0]}. Convert with a TF release whose converter emits older op "
                        "versions, or change the layer so the converter picks a lower version")
    required = None
    for op in sg.operators:
        rel = first_release(op.op, op.version)
        if rel and not rel.startswith(">") and (required is None or _vkey(rel) > _vkey(required)):
            required = rel
    mrv = m.min_runtime_version
    if mrv and _vkey(mrv) > _vkey(COMPILER_TFLITE_RUNTIME):
        warnings.append(
            f"model metadata min_runtime_version {mrv} is newer than the TF Lite runtime edgetpu_compiler "
            f"{COMPILER_VERSION.split('.')[0]}.0 embeds (~{COMPILER_TFLITE_RUNTIME}): expect \"Didn't find op for "
            "builtin opcode\" errors"
        )
    if len(m.subgraphs) > 1:
        warnings.append(
            f"model has {len(m.subgraphs)} subgraphs; only subgraph 0 is checked and the Edge TPU maps one "
            "subgraph (More than one subgraph is not supported)"
        )
    if not fits:
        warnings.append(
            f"parameters of the mapped ops ({parameter_bytes / 2**20:.2f} MiB) exceed the ~"
            f"{ON_CHIP_CACHE_BYTES / 2**20:.0f} MiB on-chip cache: the rest streams from host memory (slower); "
            "consider compile(..., num_segments=N) to pipeline over several Edge TPUs"
        )
    if compiled:
        warnings.append("model is already compiled for the Edge TPU (holds edgetpu-custom-op); check the "
                        "original CPU model instead")
    if not core:
        warnings.append("model has no operators")

    if refused or n_mapped == 0:
        status = 2
    elif n_mapped == len(core):
        status = 0
    else:
        status = 1

    if status == 0:
        verdict = "fully mappable: every op runs on the Edge TPU"
    elif status == 1:
        verdict = (f"partly mappable: {n_mapped}/{len(core)} ops on the Edge TPU, cut at op #{cut} "
                   f"({sg.operators[cut].op}); the rest runs on the CPU")
    elif refused:
        verdict = "unusable: edgetpu_compiler would refuse the model (op version too new)"
    elif float_ops and n_mapped == 0:
        verdict = "unusable: the model is not quantized (float); convert it to full int8"
    elif cut is not None:
        verdict = f"unusable: nothing maps; the first op #{cut} ({sg.operators[cut].op}) cannot run on the Edge TPU"
    else:
        verdict = "unusable: nothing maps to the Edge TPU"

    return CheckResult(
        model=m.source,
        ops=records,
        fraction_mapped=fraction,
        cut_index=cut,
        parameter_bytes=parameter_bytes,
        fits_on_chip=fits,
        warnings=warnings,
        status=status,
        verdict=verdict,
        min_runtime_version=mrv,
        required_runtime=required,
        subgraphs=len(m.subgraphs),
    )
