"""What TF Lite kernels assume of an op's operands without checking it: how many, and of which type.

Several TF Lite kernels take their inputs by position, or read an operand with
the type they expect, without first checking: a STRIDED_SLICE or BATCH_MATMUL
with a single input, a SPLIT whose axis is an int8 tensor, an LSTM whose output
is int64 segfault the interpreter or corrupt its heap (found by the fuzz test of
issue 11). :func:`edgetpu.validation.validate` refuses an op that breaks these:

* :func:`min_inputs` / :func:`min_outputs`: the least number of operands the
  kernel reads (e.g. STRIDED_SLICE input, begin, end, strides; TOPK_V2 values
  and indices); ops not listed need one input and one output;
* :data:`INDEX_OPERANDS`: inputs that hold axes, shapes, sizes or indices, and
  the integer types the kernel reads them as;
* :data:`SAME_TYPE`: ops whose data inputs and outputs share one type (the
  kernel computes in the input's type and writes the output as if it were);
* :func:`expected_options`: the options table the interpreter reads for an op
  (another table is ignored and the op runs with zeroed options: a SPLIT into
  0 parts segfaults).

Example:
    >>> from edgetpu.op_signatures import min_inputs, min_outputs, INDEX_OPERANDS
    >>> min_inputs("STRIDED_SLICE"), min_inputs("RELU"), min_outputs("TOPK_V2"), min_outputs("ASSIGN_VARIABLE")
    (4, 1, 2, 0)
    >>> INDEX_OPERANDS["SPLIT"], expected_options("MEAN"), expected_options("CONV_2D"), expected_options("RELU")
    ({0: ('int32',)}, 'ReducerOptions', 'Conv2DOptions', None)
"""

from __future__ import annotations

from edgetpu import schema

__all__ = ["INDEX_OPERANDS", "SAME_TYPE", "data_inputs", "expected_options", "min_inputs", "min_outputs"]

_INPUTS = {
    0: "CALL_ONCE HASHTABLE VAR_HANDLE STABLEHLO_IOTA STABLEHLO_COMPOSITE STABLEHLO_CUSTOM_CALL WHILE STABLEHLO_WHILE",
    1: """ABS AVERAGE_POOL_2D BITCAST CAST CEIL COMPLEX_ABS CONCATENATION COS DENSIFY DEPTH_TO_SPACE DEQUANTIZE ELU
        EXP FAKE_QUANT FLOOR GELU HARD_SWISH HASHTABLE_SIZE IF IMAG L2_NORMALIZATION L2_POOL_2D LEAKY_RELU
        LOCAL_RESPONSE_NORMALIZATION LOG LOG_SOFTMAX LOGICAL_NOT LOGISTIC MATRIX_DIAG MAX_POOL_2D NEG PACK QUANTIZE
        RANDOM_STANDARD_NORMAL RANDOM_UNIFORM RANK READ_VARIABLE REAL RELU RELU6 RELU_0_TO_1 RELU_N1_TO_1 RESHAPE
        ROUND RSQRT SHAPE SIGN SIN SKIP_GRAM SOFTMAX SPACE_TO_DEPTH SQRT SQUARE SQUEEZE TANH UNIQUE UNPACK WHERE
        ZEROS_LIKE ADD_N BUCKETIZE STABLEHLO_LOGISTIC STABLEHLO_ABS STABLEHLO_COSINE STABLEHLO_EXPONENTIAL
        STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_NEGATE STABLEHLO_RSQRT STABLEHLO_TANH STABLEHLO_CONVERT STABLEHLO_CBRT
        STABLEHLO_RESHAPE STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM STABLEHLO_SLICE STABLEHLO_TRANSPOSE
        STABLEHLO_SORT STABLEHLO_RNG_BIT_GENERATOR STABLEHLO_CASE""",
    2: """ADD ARG_MAX ARG_MIN ASSIGN_VARIABLE ATAN2 BATCH_MATMUL BITWISE_XOR BROADCAST_ARGS BROADCAST_TO CONV_2D CONV_3D
        CUMSUM DEPTHWISE_CONV_2D DIV EMBEDDING_LOOKUP EQUAL EXPAND_DIMS FILL FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER
        GATHER_ND GREATER GREATER_EQUAL LESS LESS_EQUAL LOGICAL_AND LOGICAL_OR LSH_PROJECTION MATRIX_SET_DIAG MAXIMUM
        MEAN MINIMUM MIRROR_PAD MUL MULTINOMIAL NOT_EQUAL PAD POW PRELU REDUCE_ALL REDUCE_ANY REDUCE_MAX REDUCE_MIN
        REDUCE_PROD RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_SEQUENCE REVERSE_V2 RFFT2D RIGHT_SHIFT SEGMENT_SUM
        SPLIT SQUARED_DIFFERENCE SUB SUM TILE TOPK_V2 TRANSPOSE STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY
        STABLEHLO_MAXIMUM STABLEHLO_MINIMUM STABLEHLO_AND STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER
        STABLEHLO_SUBTRACT STABLEHLO_SHIFT_LEFT STABLEHLO_COMPARE STABLEHLO_CONVOLUTION STABLEHLO_REDUCE
        STABLEHLO_DYNAMIC_SLICE STABLEHLO_PAD STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_GATHER""",
    3: """BATCH_TO_SPACE_ND CONV_3D_TRANSPOSE DILATE DYNAMIC_UPDATE_SLICE HASHTABLE_FIND HASHTABLE_IMPORT
        HASHTABLE_LOOKUP PADV2 RANGE REDUCE_WINDOW SCATTER_ND SELECT SELECT_V2 SLICE SPACE_TO_BATCH_ND SPLIT_V
        TRANSPOSE_CONV UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_MIN UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_SUM
        STABLEHLO_CLAMP STABLEHLO_SELECT STABLEHLO_SCATTER STABLEHLO_DYNAMIC_UPDATE_SLICE""",
    4: "STRIDED_SLICE ONE_HOT SPARSE_TO_DENSE EMBEDDING_LOOKUP_SPARSE",
    5: "SVDF RNN UNIDIRECTIONAL_SEQUENCE_RNN NON_MAX_SUPPRESSION_V4",
    6: "NON_MAX_SUPPRESSION_V5",
    9: "BIDIRECTIONAL_SEQUENCE_RNN",
    20: "LSTM UNIDIRECTIONAL_SEQUENCE_LSTM",
    48: "BIDIRECTIONAL_SEQUENCE_LSTM",
}
_OUTPUTS = {
    0: "ASSIGN_VARIABLE CALL_ONCE HASHTABLE_IMPORT WHILE IF STABLEHLO_WHILE STABLEHLO_CASE STABLEHLO_COMPOSITE",
    2: "TOPK_V2 UNIQUE NON_MAX_SUPPRESSION_V4",
    3: "NON_MAX_SUPPRESSION_V5",
}

_MIN_INPUTS = {op: n for n, ops in _INPUTS.items() for op in ops.split()}
_MIN_OUTPUTS = {op: n for n, ops in _OUTPUTS.items() for op in ops.split()}


def min_inputs(op: str) -> int:
    """Least number of inputs (omitted optional ones included, as -1) the op's kernel reads."""
    return _MIN_INPUTS.get(op, 1)


def min_outputs(op: str) -> int:
    """Least number of outputs the op's kernel writes."""
    return _MIN_OUTPUTS.get(op, 1)


_I32 = ("int32",)
_I32_64 = ("int32", "int64")

#: op -> {input position: integer types the kernel reads it as}.
INDEX_OPERANDS = {
    "SPLIT": {0: _I32}, "SPLIT_V": {1: _I32_64, 2: _I32}, "GATHER": {1: _I32_64 + ("int16",)},
    "GATHER_ND": {1: _I32_64 + ("int16",)}, "ARG_MAX": {1: _I32_64}, "ARG_MIN": {1: _I32_64},
    "MEAN": {1: _I32_64}, "SUM": {1: _I32_64}, "REDUCE_MAX": {1: _I32_64}, "REDUCE_MIN": {1: _I32_64},
    "REDUCE_PROD": {1: _I32_64}, "REDUCE_ANY": {1: _I32_64}, "REDUCE_ALL": {1: _I32_64}, "RESHAPE": {1: _I32},
    "RESIZE_BILINEAR": {1: _I32}, "RESIZE_NEAREST_NEIGHBOR": {1: _I32}, "PAD": {1: _I32_64}, "PADV2": {1: _I32_64},
    "MIRROR_PAD": {1: _I32_64}, "TRANSPOSE": {1: _I32_64}, "STRIDED_SLICE": {1: _I32_64, 2: _I32_64, 3: _I32_64},
    "SLICE": {1: _I32_64, 2: _I32_64}, "EXPAND_DIMS": {1: _I32_64}, "TILE": {1: _I32_64},
    "BROADCAST_TO": {1: _I32_64}, "SPACE_TO_BATCH_ND": {1: _I32, 2: _I32}, "BATCH_TO_SPACE_ND": {1: _I32, 2: _I32},
    "TRANSPOSE_CONV": {0: _I32}, "REVERSE_V2": {1: _I32_64}, "CUMSUM": {1: _I32}, "FILL": {0: _I32_64},
}

#: Ops whose data inputs (see :func:`data_inputs`) and first output have one type.
SAME_TYPE = frozenset(
    [
        "ADD", "SUB", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "RELU", "RELU6", "RELU_N1_TO_1",
        "RELU_0_TO_1", "TANH", "LOGISTIC", "ELU", "GELU", "LEAKY_RELU", "HARD_SWISH", "PRELU", "NEG", "ABS",
        "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "CONCATENATION", "PACK", "UNPACK", "SPLIT", "SPLIT_V",
        "SLICE", "STRIDED_SLICE", "PAD", "PADV2", "MIRROR_PAD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D",
        "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
        "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TILE", "REVERSE_V2",
        "GATHER", "GATHER_ND", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "LSTM",
    ]
)

_ALL_DATA = frozenset(["ADD", "SUB", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "CONCATENATION", "PACK"])
_DATA_AT = {"SPLIT": 1, "TRANSPOSE_CONV": 2}


def data_inputs(op: str, inputs) -> list:
    """The input positions of ``op`` that carry data (not weights, axes, shapes or indices)."""
    if op in _ALL_DATA:
        return list(range(len(inputs)))
    pos = _DATA_AT.get(op, 0)
    return [pos] if pos < len(inputs) else []


#: Ops whose options table is not named after them.
_OPTIONS_BY_HAND = {
    "L2_NORMALIZATION": "L2NormOptions", "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "RANDOM_STANDARD_NORMAL": "RandomOptions", "RANDOM_UNIFORM": "RandomOptions", "MULTINOMIAL": "RandomOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions", "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions", "REDUCE_ANY": "ReducerOptions", "REDUCE_ALL": "ReducerOptions",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
}


def _options_by_name() -> dict:
    tables = [name for name, _ in (*schema.BUILTIN_OPTIONS.values(), *schema.BUILTIN_OPTIONS2.values())]
    by_key = {t.lower().replace("_", ""): t for t in tables}
    out = {op: by_key.get(op.lower().replace("_", "") + "options") for op in schema.BUILTIN_OPERATORS.values()}
    out.update(_OPTIONS_BY_HAND)
    return {op: t for op, t in out.items() if t}


_EXPECTED_OPTIONS = _options_by_name()


def expected_options(op: str):
    """The builtin-options table the interpreter reads for ``op`` (e.g. ``"Conv2DOptions"``), or None if none."""
    return _EXPECTED_OPTIONS.get(op)
