"""Is a .tflite model sound enough to hand to the TF Lite interpreter?

The interpreter trusts the file: a model whose second op is a copy of the
first (so a tensor is produced twice and another never) crashes ``invoke()``;
a stride of 0 divides by zero; a tensor read before any op writes it gives
"Input tensor N lacks data"; a name that is not UTF-8 breaks
``get_tensor_details()``. :func:`validate` checks, before the interpreter sees
the model, what it needs not to crash or fail half-way:

* every op has as many inputs and outputs as its kernel reads
  (:mod:`edgetpu.op_signatures`), axis / shape / index operands of the
  integer type the kernel reads, data inputs and output of one type where the
  kernel assumes so; an LSTM omits whole groups of optional inputs or
  none; a RESHAPE to a constant shape keeps the element count;
* every op's inputs exist and are produced before use (by an earlier op, or
  they are model inputs, constants or variables); only the optional ones (a
  bias, an LSTM's peephole weights, ...) may be omitted; no tensor is produced
  twice (an op's intermediates count as produced by it); no op writes a
  constant; every model output is produced;
* model inputs are not constants; inputs and outputs have a numeric type the
  interpreter's Python API knows, a batch axis (rank >= 1) and data (no
  dimension 0), as ``edgetpu.run`` and every caller that feeds a batch expect;
* every tensor has a known type, non-negative dimensions, at most 2**31 - 1
  elements and bytes (the kernels index with ``int``), and a constant's buffer
  holds exactly ``elements x item size`` bytes (what the interpreter itself
  enforces when it loads a model, except for sparse tensors);
* quantization scales are finite, positive and normal floats, one zero point per scale and
  inside its type's range, a per-channel axis inside the shape and as long as
  the scales; an ADD / SUB output scale large enough for the kernel's
  fixed-point rescaling (below it the kernel aborts the process);
* an op's options, when present, are of the table the interpreter reads for
  it; strides, dilations, filter sizes, block sizes and split / pack counts are
  at least 1; a convolution or fully connected op on 8-bit
  data has an int32 bias (an int8 bias is a corrupt or hand-edited model);
* control-flow ops refer to existing subgraphs.

Names are checked while reading (:mod:`edgetpu.flatbuffer`: FlatBuffer strings
are UTF-8).

Example:
    >>> from edgetpu.validation import validate
    >>> validate("model_int8.tflite")                        # doctest: +SKIP
    Model(source='model_int8.tflite', ...)
    >>> validate(bytes(4) + b"TFL3" + bytes(8), name="empty.tflite")
    Traceback (most recent call last):
    ...
    edgetpu.errors.InvalidModelError: empty.tflite: corrupt TFLite flatbuffer (16 bytes): vtable of root table has size 0; expected an even size of at least 4

Raises :class:`edgetpu.errors.MalformedModelError` (an ``InvalidModelError``)
naming the file, the op or tensor, what was expected and what was found.
"""

from __future__ import annotations

import math

from edgetpu.errors import MalformedModelError
from edgetpu.model import DTYPE_SIZES, Model, Operator, Subgraph, Tensor, read_model
from edgetpu.op_signatures import (
    INDEX_OPERANDS,
    SAME_TYPE,
    data_inputs,
    expected_options,
    min_inputs,
    min_outputs,
)

__all__ = ["MAX_TENSOR_BYTES", "validate"]

#: Largest tensor, in elements and in bytes, the interpreter's kernels handle (they index with int32).
MAX_TENSOR_BYTES = 2**31 - 1

#: Tensor types the interpreter's Python API can hand over as numpy arrays (for model inputs/outputs).
_IO_TYPES = frozenset(
    ["float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
     "bool", "complex64", "complex128"]
)
#: Types whose elements have no fixed size, and the packed sub-byte types (never sized per element here).
_UNSIZED = frozenset(["string", "resource", "variant", "int4", "uint4", "int2"])

#: Left shift of quantized ADD / SUB before rescaling, per output type (TF Lite's add.cc / sub.cc).
_ADD_SHIFT = {"int8": 20, "uint8": 20, "int16": 15}

#: Smallest normal float32 (2**-126): a scale of 8.4e-39 (subnormal) segfaults QUANTIZE, 1.2e-38 does not.
_SMALLEST_NORMAL = 2.0**-126

#: Zero points a quantized kernel can index with (others read outside its tables: segfault).
_ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
                     "int4": (-8, 7)}

_POOL = ("strideW", "strideH", "filterWidth", "filterHeight")
#: Op -> options fields that must be >= 1 (missing options read as the schema defaults, 0: a stride of 0
#: divides by zero, a SPLIT into 0 parts segfaults).
_POSITIVE_OPTIONS = {
    "CONV_2D": ("strideW", "strideH", "dilationWFactor", "dilationHFactor"),
    "DEPTHWISE_CONV_2D": ("strideW", "strideH", "dilationWFactor", "dilationHFactor"),
    "TRANSPOSE_CONV": ("strideW", "strideH"), "AVERAGE_POOL_2D": _POOL, "MAX_POOL_2D": _POOL, "L2_POOL_2D": _POOL,
    "SPACE_TO_DEPTH": ("blockSize",), "DEPTH_TO_SPACE": ("blockSize",), "SPLIT": ("numSplits",),
    "SPLIT_V": ("numSplits",), "UNPACK": ("num",), "PACK": ("valuesCount",),
}

_LSTM_OPTIONAL = frozenset({1, 5, 9, 10, 11, 12, 16, 17, 20, 21, 22, 23})  # CIFG, peephole, projection, layer norm
_BILSTM_OPTIONAL = frozenset({1, 5, 9, 10, 11, 12, 16, 17} | {18, 22, 26, 27, 28, 29, 33, 34} | set(range(39, 48)))
#: Op -> input positions that may be omitted (-1); kernels dereference every other input (a CONV_2D
#: without its filter segfaults). Custom ops may omit any but the first.
_OPTIONAL_INPUTS = {
    "CONV_2D": frozenset({2}), "DEPTHWISE_CONV_2D": frozenset({2}), "FULLY_CONNECTED": frozenset({2}),
    "CONV_3D": frozenset({2}), "TRANSPOSE_CONV": frozenset({3}), "CONV_3D_TRANSPOSE": frozenset({3}),
    "SVDF": frozenset({3}), "LSTM": _LSTM_OPTIONAL, "UNIDIRECTIONAL_SEQUENCE_LSTM": _LSTM_OPTIONAL,
    "BIDIRECTIONAL_SEQUENCE_LSTM": _BILSTM_OPTIONAL, "BIDIRECTIONAL_SEQUENCE_RNN": frozenset({9, 10, 11}),
}

#: Op -> position of its bias input (conv / fully connected).
_BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}


class _Checker:
    """Raises the first problem found, naming the model."""

    def __init__(self, m: Model):
        self.m = m

    def fail(self, where: str, expected: str, found: str) -> None:
        raise MalformedModelError(self.m.source, where, expected, found)


def _tensor_where(sg: Subgraph, t: Tensor) -> str:
    where = f"tensor {t.index} '{t.name}'"
    return where if sg.index == 0 else f"subgraph {sg.index} {where}"


def _op_where(sg: Subgraph, op: Operator) -> str:
    where = f"op #{op.index} ({op.op})"
    return where if sg.index == 0 else f"subgraph {sg.index} {where}"


def _check_size(c: _Checker, sg: Subgraph, t: Tensor) -> None:
    where = _tensor_where(sg, t)
    if t.dtype.startswith("type_"):
        c.fail(where, "a known TFLite tensor type", f"type code {t.dtype[5:]}")
    if any(d < 0 for d in t.shape):
        c.fail(where, "non-negative dimensions (-1 belongs in shape_signature)", f"shape {list(t.shape)}")
    n, size = t.num_elements, DTYPE_SIZES.get(t.dtype, 1)
    if n > MAX_TENSOR_BYTES or n * size > MAX_TENSOR_BYTES:
        c.fail(where, f"at most {MAX_TENSOR_BYTES} elements and bytes (the kernels index with int32)",
               f"shape {list(t.shape)} of {t.dtype}: {n * size / 1e9:.1f} GB")
    if t.is_constant and not t.sparse and t.dtype not in _UNSIZED and t.nbytes != t.buffer_bytes:
        c.fail(where, f"a buffer of {t.nbytes} bytes ({t.num_elements} x {t.dtype}, shape {list(t.shape)})",
               f"{t.buffer_bytes} bytes in buffer {t.buffer}")


def _check_quantization(c: _Checker, sg: Subgraph, t: Tensor) -> None:
    if not t.scale:
        return
    where = _tensor_where(sg, t)
    bad = [s for s in t.scale if not (math.isfinite(s) and s >= _SMALLEST_NORMAL)]
    if bad:
        c.fail(where, f"finite, positive quantization scales of at least {_SMALLEST_NORMAL:.4g} (the smallest normal "
               "float32: a subnormal scale overflows 1/scale and crashes the quantize kernel)", f"scale {bad[0]!r}")
    if t.zero_point and len(t.zero_point) != len(t.scale):
        c.fail(where, f"one zero point per scale ({len(t.scale)})", f"{len(t.zero_point)} zero points")
    low, high = _ZERO_POINT_RANGE.get(t.dtype, (-(2**31), 2**31 - 1))
    bad = [z for z in t.zero_point if not low <= z <= high]
    if bad:
        c.fail(where, f"zero points of a {t.dtype} tensor in {low}..{high}", f"zero point {bad[0]}")
    if len(t.scale) > 1:
        axis = t.quantized_dimension
        if not 0 <= axis < len(t.shape) or t.shape[axis] != len(t.scale):
            c.fail(where, f"a per-channel quantization axis of size {len(t.scale)} (one scale per channel)",
                   f"axis {axis} of shape {list(t.shape)}")


def _check_options(c: _Checker, sg: Subgraph, op: Operator, n_subgraphs: int) -> None:
    table = expected_options(op.op)
    if table is not None and op.options_type not in (None, table):
        c.fail(_op_where(sg, op), f"options of type {table}", f"{op.options_type}")
    spec = _POSITIVE_OPTIONS.get(op.op)
    if spec is not None:
        for key in spec:
            value = op.options.get(key, 0)
            if value < 1:
                c.fail(_op_where(sg, op), f"{key} >= 1", f"{key} {value}")
    for key, value in op.options.items():
        if key.endswith("SubgraphIndex") and not 0 <= value < n_subgraphs:
            c.fail(_op_where(sg, op), f"{key} in 0..{n_subgraphs - 1}", f"{value}")
        if key.endswith("SubgraphIndices") and value and not all(0 <= v < n_subgraphs for v in value):
            c.fail(_op_where(sg, op), f"{key} in 0..{n_subgraphs - 1}", f"{value}")


def _check_add_rescaling(c: _Checker, sg: Subgraph, op: Operator) -> None:
    """ADD / SUB rescale to 2 * max(input scale) / 2**shift / output scale, which must be < 1, or the kernel aborts."""
    if op.op not in ("ADD", "SUB") or len(op.inputs) != 2 or len(op.outputs) != 1 or min(op.inputs + op.outputs) < 0:
        return
    (a, b), out = (sg.tensors[i] for i in op.inputs), sg.tensors[op.outputs[0]]
    if not all(t.dtype in _ADD_SHIFT and len(t.scale) == 1 for t in (a, b, out)):
        return
    bound = 2 * max(a.scale[0], b.scale[0]) / 2 ** _ADD_SHIFT[out.dtype]
    if not out.scale[0] > bound:
        c.fail(f"{_op_where(sg, op)} output {_tensor_where(sg, out)}",
               f"a scale above {bound:g} (2 x the larger input scale / 2**{_ADD_SHIFT[out.dtype]}: the kernel's "
               "fixed-point rescaling aborts the process below it)", f"scale {out.scale[0]:g}")


def _check_bias(c: _Checker, sg: Subgraph, op: Operator) -> None:
    pos = _BIAS_INPUT.get(op.op)
    if pos is None or len(op.inputs) <= pos or op.inputs[pos] < 0 or op.inputs[0] < 0:
        return
    data, bias = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[pos]]
    if op.op == "TRANSPOSE_CONV":
        data = sg.tensors[op.inputs[2]] if op.inputs[2] >= 0 else data
    if data.dtype in ("int8", "uint8") and bias.dtype != "int32":
        c.fail(f"{_op_where(sg, op)} bias {_tensor_where(sg, bias)}",
               f"an int32 bias for {data.dtype} data", f"{bias.dtype}")


def _check_omitted_inputs(c: _Checker, sg: Subgraph, op: Operator) -> None:
    if op.is_custom:
        allowed = range(1, len(op.inputs))
    else:
        allowed = _OPTIONAL_INPUTS.get(op.op, ())
    for pos, i in enumerate(op.inputs):
        if i < 0 and pos not in allowed:
            c.fail(_op_where(sg, op), f"input {pos} present ({op.op} cannot omit it)", f"input index {i}")


def _check_arity(c: _Checker, sg: Subgraph, op: Operator) -> None:
    if op.is_custom:
        return
    for kind, have, need in (("inputs", len(op.inputs), min_inputs(op.op)), ("outputs", len(op.outputs),
                                                                                min_outputs(op.op))):
        if have < need:
            c.fail(_op_where(sg, op), f"at least {need} {kind} (its kernel reads them by position)", f"{have}")


def _check_operand_types(c: _Checker, sg: Subgraph, op: Operator) -> None:
    for pos, types in INDEX_OPERANDS.get(op.op, {}).items():
        if pos < len(op.inputs) and op.inputs[pos] >= 0 and sg.tensors[op.inputs[pos]].dtype not in types:
            t = sg.tensors[op.inputs[pos]]
            c.fail(f"{_op_where(sg, op)} input {pos} {_tensor_where(sg, t)}", f"an index operand of type "
                   f"{' or '.join(types)}", t.dtype)
    if op.op not in SAME_TYPE or not op.outputs or op.outputs[0] < 0:
        return
    out = sg.tensors[op.outputs[0]]
    for pos in data_inputs(op.op, op.inputs):
        i = op.inputs[pos]
        if i >= 0 and sg.tensors[i].dtype != out.dtype:
            c.fail(f"{_op_where(sg, op)} input {pos} {_tensor_where(sg, sg.tensors[i])}",
                   f"the type of its output '{out.name}' ({out.dtype})", sg.tensors[i].dtype)


def _check_lstm_groups(c: _Checker, sg: Subgraph, op: Operator) -> None:
    """An LSTM omits whole groups of inputs (input gate, peepholes, projection, layer norm) or none of one."""
    if op.op not in ("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM"):
        return
    has = [i >= 0 for i in op.inputs] + [False] * (24 - len(op.inputs))
    cifg = not has[1]
    rules = (
        ("input gate (inputs 1, 5, 12)", [has[1], has[5], has[12]]),
        ("peepholes (inputs 10, 11)" + ("" if cifg else " and 9"), [has[10], has[11]] + ([] if cifg else [has[9]])),
        ("layer norm (inputs 21-23)" + ("" if cifg else " and 20"), has[21:24] + ([] if cifg else [has[20]])),
    )
    for group, present in rules:
        if len(set(present)) > 1:
            c.fail(_op_where(sg, op), f"its {group} all present or all omitted", f"presence {present}")
    if has[17] and not has[16]:
        c.fail(_op_where(sg, op), "a projection bias (input 17) only with projection weights (input 16)",
               "a bias alone")


def _check_reshape(c: _Checker, m: Model, sg: Subgraph, op: Operator) -> None:
    """A constant new shape: at most one -1, other sizes >= 0, as many elements as the input."""
    if op.op != "RESHAPE" or len(op.inputs) < 2 or op.inputs[1] < 0 or op.inputs[0] < 0:
        return
    shape_t = sg.tensors[op.inputs[1]]
    values = m.tensor_data(shape_t) if shape_t.is_constant else None
    if values is None:
        return
    dims = [int(v) for v in values.ravel()] if values.dtype.kind in "iu" else None
    n_in = sg.tensors[op.inputs[0]].num_elements
    known = 1
    for d in dims or []:
        known *= d if d >= 0 else 1
    bad = (dims is None or len(dims) > 8 or sum(d < 0 for d in dims) > 1 or any(d < -1 for d in dims)
           or (-1 not in dims and known != n_in) or (-1 in dims and (known == 0 or n_in % known)))
    if bad:
        c.fail(f"{_op_where(sg, op)} new shape {_tensor_where(sg, shape_t)}",
               f"at most 8 sizes >= 0 (one may be -1) holding the input's {n_in} elements",
               f"{dims if dims is not None else values.dtype}")


def _check_io(c: _Checker, sg: Subgraph) -> None:
    for kind, idx in (("input", sg.inputs), ("output", sg.outputs)):
        for i in idx:
            t = sg.tensors[i]
            if t.dtype not in _IO_TYPES:
                c.fail(f"model {kind} {_tensor_where(sg, t)}", "a numeric type", t.dtype)
            if not t.shape or t.num_elements == 0:
                c.fail(f"model {kind} {_tensor_where(sg, t)}", "a batch-first tensor holding data (rank >= 1, no "
                       "dimension 0)", f"shape {list(t.shape)}")
            if kind == "input" and t.is_constant:
                c.fail(f"model input {_tensor_where(sg, t)}", "a tensor without data (the caller fills it)",
                       f"a constant with {t.buffer_bytes} bytes of data")


def _check_data_flow(c: _Checker, sg: Subgraph) -> None:
    ready: set[int] = {t.index for t in sg.tensors if t.is_constant or t.is_variable} | set(sg.inputs)
    for op in sg.operators:
        where = _op_where(sg, op)
        for i in op.inputs:
            if i >= 0 and i not in ready and sg.tensors[i].num_elements:  # an empty tensor needs no data
                t = sg.tensors[i]
                c.fail(f"{where} input {_tensor_where(sg, t)}",
                       "a tensor produced by an earlier op, a model input or a constant", "nothing produces it first")
        for kind, idx in (("output", op.outputs), ("intermediate", op.intermediates)):
            for i in idx:
                t: Tensor | None = sg.tensors[i] if i >= 0 else None
                if t is None:
                    c.fail(where, f"{kind} tensor indices >= 0", f"{kind} {i}")
                if i in ready:
                    what = "a constant" if t.is_constant else "a model input" if i in sg.inputs else "already produced"
                    c.fail(f"{where} {kind} {_tensor_where(sg, t)}", "a tensor no other op produces", what)
                ready.add(i)
    for i in sg.outputs:
        if i not in ready:
            c.fail(f"model output {_tensor_where(sg, sg.tensors[i])}", "a tensor some op produces",
                   "nothing produces it")


def validate(model, name: str | None = None) -> Model:
    """Check that ``model`` is sound enough for the TF Lite interpreter; return it parsed.

    Args:
        model: a path, bytes or :class:`edgetpu.model.Model`.
        name: what messages call the model when ``model`` is bytes.

    Raises:
        InvalidModelError: not a readable .tflite model (missing, truncated, not UTF-8, ...).
        MalformedModelError: readable, but the interpreter would crash or fail on it;
            the message names the op or tensor, what was expected and what was found.
    """
    m = read_model(model, name)
    c = _Checker(m)
    for sg in m.subgraphs:
        for t in sg.tensors:
            _check_size(c, sg, t)
            _check_quantization(c, sg, t)
        _check_io(c, sg)
        for op in sg.operators:
            _check_options(c, sg, op, len(m.subgraphs))
            _check_arity(c, sg, op)
            _check_omitted_inputs(c, sg, op)
            _check_operand_types(c, sg, op)
            _check_lstm_groups(c, sg, op)
            _check_reshape(c, m, sg, op)
            _check_add_rescaling(c, sg, op)
            _check_bias(c, sg, op)
        _check_data_flow(c, sg)
    return m
