"""Which TF Lite runtime a model's op versions need, and which ops a given runtime lacks.

Every builtin op of a .tflite file carries a version, and an interpreter only
registers the versions that existed when it was released: tflite-runtime 2.14
refuses a FULLY_CONNECTED version 12 written by TF 2.21's dynamic-range
converter with "Didn't find op for builtin opcode 'FULLY_CONNECTED' version
'12'", and edgetpu_compiler 16 (which embeds a TF Lite of the 2.6 era) refuses
CONV_2D version 6 the same way. TensorFlow keeps the first release of every
(op, version) in ``tensorflow/compiler/mlir/lite/tools/versioning/runtime_version.cc``
(the table the converter uses to write the ``min_runtime_version`` metadata);
:data:`OP_VERSION_FIRST_RELEASE` is that table (TF master, with entries up to
2.23.0).

Example:
    >>> from edgetpu.runtime_versions import first_release, newer_than
    >>> first_release("FULLY_CONNECTED", 12), first_release("CONV_2D", 6)
    ('2.17.0', '2.9.0')
    >>> newer_than("2.17.0", "2.14"), newer_than("2.9.0", "2.14")
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetpu.errors import VersionError
from edgetpu.model import Model, read_model

__all__ = [
    "OP_VERSION_FIRST_RELEASE",
    "OpRuntime",
    "first_release",
    "newer_than",
    "ops_newer_than",
    "parse_version",
    "required_runtime",
]

# (op: first TF release of version 1, 2, 3, ...), from runtime_version.cc; "-" marks a version the table
# does not list (BROADCAST_TO starts at version 2).
_TABLE = {
    "ABS": "1.13.0 2.4.0 2.5.0 2.6.0 2.12.0",
    "ADD": "1.5.0 1.14.0 2.4.0 2.6.0 2.13.0 2.23.0",
    "ADD_N": "1.14.0",
    "ARG_MAX": "1.9.0 1.14.0 2.9.0",
    "ARG_MIN": "1.9.0 1.14.0 2.9.0",
    "ASSIGN_VARIABLE": "2.6.0",
    "ATAN2": "2.10.0",
    "AVERAGE_POOL_2D": "1.5.0 1.14.0 2.3.0",
    "BATCH_MATMUL": "2.3.0 2.3.0 2.4.0 2.5.0",
    "BATCH_TO_SPACE_ND": "1.6.0 1.14.0 2.3.0 2.12.0",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "1.14.0 1.14.0 1.14.0",
    "BIDIRECTIONAL_SEQUENCE_RNN": "1.14.0 1.14.0 2.3.0",
    "BITCAST": "2.13.0",
    "BITWISE_XOR": "2.13.0",
    "BROADCAST_ARGS": "2.6.0",
    "BROADCAST_TO": "- 2.5.0 2.5.0",
    "BUCKETIZE": "2.8.0",
    "CALL_ONCE": "2.5.0",
    "CAST": "1.5.0 2.7.0 2.8.0 2.9.0 2.12.0 2.15.0 2.17.0 2.21.0",
    "CEIL": "1.14.0",
    "COMPLEX_ABS": "2.5.0",
    "CONCATENATION": "1.5.0 1.14.0 2.3.0 2.14.0 2.21.0",
    "CONV_2D": "1.5.0 1.14.0 1.14.0 2.3.0 2.4.0 2.9.0 2.11.0 2.15.0",
    "CONV_3D": "2.5.0",
    "CONV_3D_TRANSPOSE": "2.6.0",
    "COS": "1.14.0",
    "CUMSUM": "2.4.0",
    "DENSIFY": "2.2.0",
    "DEPTH_TO_SPACE": "2.1.0 2.5.0",
    "DEPTHWISE_CONV_2D": "1.5.0 1.12.0 1.14.0 2.2.0 2.3.0 2.3.0 2.11.0",
    "DEQUANTIZE": "1.13.1 1.14.0 1.15.0 2.2.0 2.7.0 2.18.0 2.21.0 2.22.0",
    "DILATE": "2.15.0",
    "DIV": "1.6.0 2.3.0",
    "DYNAMIC_UPDATE_SLICE": "2.9.0 2.17.0 2.19.0 2.20.0 2.21.0 2.22.0",
    "ELU": "1.14.0",
    "EMBEDDING_LOOKUP": "1.13.0 1.14.0 1.14.0 2.18.0 2.21.0",
    "EMBEDDING_LOOKUP_SPARSE": "1.5.0",
    "EQUAL": "1.14.0 1.14.0 2.3.0 2.13.0 2.21.0",
    "EXP": "1.7.0 2.12.0",
    "EXPAND_DIMS": "1.10.0",
    "FAKE_QUANT": "1.5.0 1.10.0",
    "FILL": "1.13.0 2.3.0 2.5.0 2.12.0",
    "FLOOR": "1.9.0",
    "FLOOR_DIV": "1.14.0 1.14.0 2.13.0",
    "FLOOR_MOD": "1.13.0 2.13.0",
    "FULLY_CONNECTED": "1.5.0 1.10.0 1.14.0 1.14.0 2.0.0 2.1.0 2.3.0 2.3.0 2.3.0 2.11.0 2.15.0 2.17.0 2.18.0 2.21.0",
    "GATHER": "1.6.0 1.14.0 1.15.0 2.4.0 2.5.0 2.13.0 2.15.0",
    "GATHER_ND": "1.14.0 2.3.0 2.5.0 2.13.0 2.16.0",
    "GELU": "2.9.0 2.9.0",
    "GREATER": "1.14.0 1.14.0",
    "GREATER_EQUAL": "1.14.0 1.14.0 2.13.0",
    "HARD_SWISH": "1.15.0",
    "HASHTABLE": "2.5.0",
    "HASHTABLE_FIND": "2.5.0",
    "HASHTABLE_IMPORT": "2.5.0",
    "HASHTABLE_LOOKUP": "1.5.0",
    "HASHTABLE_SIZE": "2.5.0",
    "IF": "1.15.0",
    "IMAG": "2.5.0",
    "L2_NORMALIZATION": "1.5.0 1.14.0",
    "L2_POOL_2D": "1.5.0",
    "LEAKY_RELU": "1.13.1 2.3.0",
    "LESS": "1.14.0 1.14.0 2.13.0",
    "LESS_EQUAL": "1.14.0 1.14.0",
    "LOCAL_RESPONSE_NORMALIZATION": "1.5.0",
    "LOG": "1.14.0 2.15.0",
    "LOG_SOFTMAX": "1.14.0 1.14.0",
    "LOGICAL_AND": "1.11.0",
    "LOGICAL_NOT": "1.11.0",
    "LOGICAL_OR": "1.11.0",
    "LOGISTIC": "1.14.0 1.14.0 2.3.0",
    "LSH_PROJECTION": "1.5.0",
    "LSTM": "1.7.0 1.10.0 1.14.0 2.3.0",
    "MATRIX_DIAG": "1.14.0",
    "MATRIX_SET_DIAG": "1.14.0",
    "MAX_POOL_2D": "1.5.0 1.14.0 2.3.0",
    "MAXIMUM": "1.14.0 1.14.0 2.3.0 2.3.0",
    "MEAN": "1.6.0 1.14.0 2.4.0",
    "MINIMUM": "1.14.0 1.14.0 2.3.0 2.3.0",
    "MIRROR_PAD": "1.13.1 2.3.0 2.12.0",
    "MUL": "1.5.0 1.14.0 1.15.0 2.3.0 2.6.0 2.11.0 2.13.0 2.23.0",
    "MULTINOMIAL": "2.8.0",
    "NEG": "1.9.0",
    "NON_MAX_SUPPRESSION_V4": "2.1.0",
    "NON_MAX_SUPPRESSION_V5": "2.1.0",
    "NOT_EQUAL": "1.14.0 1.14.0 2.3.0 2.21.0",
    "ONE_HOT": "1.11.0",
    "PACK": "1.11.0 1.14.0 2.3.0 2.13.0",
    "PAD": "1.5.0 1.14.0 2.4.0 2.6.0 2.20.0",
    "PADV2": "1.9.0 1.14.0 2.4.0 2.6.0 2.20.0",
    "POW": "1.10.0",
    "PRELU": "1.8.0",
    "QUANTIZE": "1.14.0 1.15.0 2.7.0 2.21.0 2.21.0 2.21.0",
    "RANDOM_STANDARD_NORMAL": "2.8.0",
    "RANDOM_UNIFORM": "2.8.0",
    "RANGE": "1.13.0 2.14.0",
    "RANK": "1.14.0",
    "READ_VARIABLE": "2.6.0",
    "REAL": "2.5.0",
    "REDUCE_ALL": "2.6.0",
    "REDUCE_ANY": "1.11.0",
    "REDUCE_MAX": "1.11.0 1.14.0 2.5.0",
    "REDUCE_MIN": "1.11.0 1.14.0 2.5.0",
    "REDUCE_PROD": "1.11.0 2.6.0",
    "REDUCE_WINDOW": "2.15.0",
    "RELU": "1.5.0 2.1.0 2.5.0",
    "RELU6": "1.5.0 1.14.0 2.5.0",
    "RELU_0_TO_1": "2.10.0",
    "RELU_N1_TO_1": "1.5.0",
    "RESHAPE": "1.5.0",
    "RESIZE_BILINEAR": "1.7.0 1.14.0 2.2.0 2.5.0",
    "RESIZE_NEAREST_NEIGHBOR": "1.13.1 1.14.0 2.3.0 2.4.0",
    "REVERSE_SEQUENCE": "1.14.0",
    "REVERSE_V2": "1.14.0 2.2.0 2.5.0",
    "RFFT2D": "2.5.0",
    "RIGHT_SHIFT": "2.13.0",
    "RNN": "1.5.0 1.14.0 2.3.0",
    "ROUND": "1.14.0",
    "RSQRT": "1.10.0 2.5.0 2.15.0",
    "SCATTER_ND": "2.1.0",
    "SEGMENT_SUM": "2.2.0",
    "SELECT": "1.14.0 1.14.0 2.12.0 2.12.0",
    "SELECT_V2": "2.2.0 2.12.0",
    "SHAPE": "1.10.0",
    "SIGN": "2.11.0 2.12.0",
    "SIN": "1.9.0",
    "SKIP_GRAM": "1.5.0",
    "SLICE": "1.14.0 1.14.0 1.14.0 2.4.0 2.5.0 2.14.0 2.21.0",
    "SOFTMAX": "1.5.0 1.14.0 2.3.0",
    "SPACE_TO_BATCH_ND": "1.6.0 1.14.0 2.3.0 2.12.0",
    "SPACE_TO_DEPTH": "1.5.0 1.14.0",
    "SPARSE_TO_DENSE": "1.9.0 1.14.0 1.15.0",
    "SPLIT": "1.5.0 1.14.0 1.14.0 2.3.0",
    "SPLIT_V": "1.13.1 2.3.0",
    "SQRT": "1.10.0 2.21.0",
    "SQUARE": "1.12.0",
    "SQUARED_DIFFERENCE": "1.13.1 2.5.0",
    "SQUEEZE": "1.6.0 2.5.0",
    "STABLEHLO_ADD": "2.16.0",
    "STABLEHLO_AND": "2.17.0",
    "STABLEHLO_CASE": "2.17.0",
    "STABLEHLO_CBRT": "2.17.0",
    "STABLEHLO_COMPOSITE": "2.17.0",
    "STABLEHLO_GATHER": "2.16.0",
    "STABLEHLO_MAXIMUM": "2.16.0",
    "STABLEHLO_MINIMUM": "2.16.0",
    "STABLEHLO_MULTIPLY": "2.16.0",
    "STABLEHLO_PAD": "2.16.0",
    "STABLEHLO_REDUCE_WINDOW": "2.16.0",
    "STABLEHLO_RNG_BIT_GENERATOR": "2.15.0",
    "STABLEHLO_SCATTER": "2.15.0",
    "STABLEHLO_SHIFT_LEFT": "2.17.0",
    "STRIDED_SLICE": "1.6.0 1.14.0 2.1.0 2.2.0 2.5.0 2.6.0 2.14.0 2.14.0",
    "SUB": "1.6.0 1.14.0 2.3.0 2.4.0 2.4.0",
    "SUM": "1.10.0 1.15.0",
    "SVDF": "1.5.0 1.14.0 2.2.0 2.3.0",
    "TANH": "1.14.0 1.14.0 2.3.0",
    "TILE": "1.10.1 2.2.0 2.8.0",
    "TOPK_V2": "1.7.0 1.14.0 2.13.0",
    "TRANSPOSE": "1.6.0 1.14.0 1.15.0 2.3.0 2.4.0 2.12.0 2.14.4 2.22.0",
    "TRANSPOSE_CONV": "1.9.0 2.2.0 2.3.0 2.13.0 2.15.0",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "1.13.1 1.14.0 2.3.0 2.12.0",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "1.14.0 1.14.0 2.3.0",
    "UNIQUE": "1.14.0",
    "UNPACK": "1.11.0 1.14.0 2.2.0 2.3.0 2.22.0",
    "UNSORTED_SEGMENT_MAX": "2.10.0",
    "UNSORTED_SEGMENT_MIN": "2.11.0",
    "UNSORTED_SEGMENT_PROD": "2.10.0",
    "UNSORTED_SEGMENT_SUM": "2.10.0",
    "VAR_HANDLE": "2.6.0",
    "WHERE": "1.14.0 2.8.0",
    "WHILE": "1.15.0",
    "ZEROS_LIKE": "1.12.0",
}

#: ``{op: {version: first TF release}}``, TensorFlow's runtime_version.cc.
OP_VERSION_FIRST_RELEASE: dict[str, dict[int, str]] = {
    op: {i + 1: v for i, v in enumerate(s.split()) if v != "-"} for op, s in _TABLE.items()
}


def parse_version(version: str) -> tuple[int, ...]:
    """``"2.14"`` -> ``(2, 14, 0)``: numeric parts, padded to three (suffixes like ``rc1`` ignored).

    >>> parse_version("2.14"), parse_version("2.16.1"), parse_version("2.17.0rc1")
    ((2, 14, 0), (2, 16, 1), (2, 17, 0))
    >>> parse_version("latest")
    Traceback (most recent call last):
    ...
    edgetpu.errors.VersionError: expected a TF Lite runtime version such as '2.14' or '2.14.0'; got 'latest'

    Raises:
        VersionError: the text does not start with a number.
    """
    out = []
    for part in str(version).split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        out.append(int(digits) if digits else 0)
    if not str(version)[:1].isdigit() or len(out) > 4:
        raise VersionError(version)
    while len(out) < 3:
        out.append(0)
    return tuple(out)


def newer_than(release: str | None, runtime: str) -> bool:
    """True when ``release`` (a :func:`first_release` answer) is later than ``runtime``.

    ``">X"`` (a version past the table's last entry X) counts as newer when X
    is not older than ``runtime``; None (op or version unknown) never does.
    """
    if release is None:
        return False
    if release.startswith(">"):
        return parse_version(release[1:]) >= parse_version(runtime)
    return parse_version(release) > parse_version(runtime)


def first_release(op: str, version: int) -> str | None:
    """First TF release whose TF Lite runtime runs ``op`` at ``version``.

    Returns None when the op (or that version) is not in the table; ``">X"``
    when the version is newer than the table's last entry for that op (first
    release X).
    """
    table = OP_VERSION_FIRST_RELEASE.get(op)
    if not table:
        return None
    if version in table:
        return table[version]
    if version > max(table):
        return ">" + table[max(table)]
    return None


@dataclass(frozen=True)
class OpRuntime:
    """An op whose version needs a TF Lite runtime newer than the one asked about."""

    index: int
    op: str
    version: int
    first_release: str

    def describe(self, runtime: str) -> str:
        first = self.first_release
        when = f"a runtime newer than {first[1:]}" if first.startswith(">") else f"TF Lite {first}"
        return (f"op #{self.index} {self.op} version {self.version} needs {when} (first release that runs it); "
                f"runtime {runtime} fails with \"Didn't find op for builtin opcode '{self.op}' version "
                f"'{self.version}'\"")

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "op": self.op, "version": self.version, "first_release": self.first_release}


def required_runtime(model) -> str | None:
    """The oldest TF Lite runtime that has every op version of ``model`` (by the table), or None.

    Args:
        model: a path, bytes or :class:`edgetpu.model.Model`.
    """
    m: Model = read_model(model)
    best = None
    for sg in m.subgraphs:
        for op in sg.operators:
            rel = first_release(op.op, op.version)
            if rel and not rel.startswith(">") and (best is None or parse_version(rel) > parse_version(best)):
                best = rel
    return best


def ops_newer_than(model, runtime: str) -> list[OpRuntime]:
    """Every op of ``model`` (all subgraphs) whose version needs a TF Lite runtime newer than ``runtime``.

    Args:
        model: a path, bytes or :class:`edgetpu.model.Model`.
        runtime: a TF Lite / TensorFlow release such as ``"2.14"`` or ``"2.14.0"``.

    Returns:
        One :class:`OpRuntime` per offending op, in execution order; empty when
        ``runtime`` has every op version the model uses.
    """
    m: Model = read_model(model)
    out = []
    for sg in m.subgraphs:
        for op in sg.operators:
            rel = first_release(op.op, op.version)
            if newer_than(rel, runtime):
                out.append(OpRuntime(op.index, op.op, op.version, rel))
    return out
