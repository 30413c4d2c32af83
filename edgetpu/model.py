"""Read a .tflite flatbuffer into plain Python objects.

A .tflite file is a FlatBuffer whose root is a ``Model`` table (TFLite's
``schema.fbs``) with the file identifier ``TFL3`` at bytes 4-8.
:func:`read_model` walks that table once and returns a :class:`Model` made of
frozen dataclasses: subgraphs, operators in execution order (the order of
``SubGraph.operators``), tensors with their quantization, metadata (including
the converter's ``min_runtime_version``) and whether the model already holds
the Edge TPU custom op (``edgetpu-custom-op``), i.e. was produced by
``edgetpu_compiler``.

Only the standard library and numpy are needed: the flatbuffer is read by
:mod:`edgetpu.flatbuffer` with the field positions shipped in
:mod:`edgetpu.schema` (no ``ai_edge_litert``, no TensorFlow). Buffers are never
copied element by element: sizes come from the vector lengths, and contents
(when asked for with :meth:`Model.buffer_data`) are numpy views.

Example:
    >>> from edgetpu.model import read_model
    >>> m = read_model("mobilenet_v2_int8.tflite")          # doctest: +SKIP
    >>> [op.op for op in m.subgraphs[0].operators][:3]       # doctest: +SKIP
    ['QUANTIZE', 'CONV_2D', 'DEPTHWISE_CONV_2D']
    >>> read_model(b"not a model")
    Traceback (most recent call last):
    ...
    edgetpu.errors.InvalidModelError: <bytes>: not a TFLite model: expected a TFLite flatbuffer with file identifier "TFL3" at bytes 4-8, found identifier b'a mo'

Bad input (a missing path, an empty file, a PNG, random bytes, a truncated
model) raises :class:`edgetpu.errors.InvalidModelError` naming the file, what
was expected and what was found. Whether the model is sound enough for the
interpreter (tensors produced before use, sizes that match their buffers, ...)
is :func:`edgetpu.validation.validate`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from edgetpu import schema
from edgetpu.errors import InvalidModelError
from edgetpu.flatbuffer import Reader, Table

__all__ = [
    "DTYPE_SIZES",
    "EDGETPU_CUSTOM_OP",
    "FILE_IDENTIFIER",
    "Model",
    "Operator",
    "Subgraph",
    "Tensor",
    "activation_name",
    "builtin_op_name",
    "dtype_name",
    "is_compiled",
    "load_bytes",
    "read_model",
    "unpack_int4",
]

#: Custom-op code that ``edgetpu_compiler`` writes for the part mapped to the TPU.
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
#: FlatBuffer file identifier of every .tflite file (bytes 4..8).
FILE_IDENTIFIER = b"TFL3"
#: Bytes per element of the tensor types whose size is fixed (string, resource,
#: variant and the packed 2/4-bit types have none).
DTYPE_SIZES = {
    "float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1, "complex64": 8, "complex128": 16,
    "float8_e4m3fn": 1, "float8_e5m2": 1,
}

ModelSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, "Model"]

_MODEL = schema.SLOTS["Model"]
_SUBGRAPH = schema.SLOTS["SubGraph"]
_TENSOR = schema.SLOTS["Tensor"]
_OPERATOR = schema.SLOTS["Operator"]
_OPCODE = schema.SLOTS["OperatorCode"]
_BUFFER = schema.SLOTS["Buffer"]
_METADATA = schema.SLOTS["Metadata"]
_QUANT = schema.SLOTS["QuantizationParameters"]
_CUSTOM = 32  # BuiltinOperator.CUSTOM


def builtin_op_name(code: int) -> str:
    """Name of a ``BuiltinOperator`` code, e.g. 3 -> ``"CONV_2D"``.

    >>> builtin_op_name(3), builtin_op_name(9999)
    ('CONV_2D', 'BUILTIN_9999')
    """
    return schema.BUILTIN_OPERATORS.get(code, f"BUILTIN_{code}")


def dtype_name(tensor_type: int) -> str:
    """Lower-case name of a ``TensorType`` code, e.g. 9 -> ``"int8"``.

    >>> dtype_name(9), dtype_name(99)
    ('int8', 'type_99')
    """
    name = schema.TENSOR_TYPES.get(tensor_type)
    return name.lower() if name else f"type_{tensor_type}"


def activation_name(code: int) -> str:
    """Name of a fused ``ActivationFunctionType`` code, e.g. 1 -> ``"RELU"``.

    >>> activation_name(1), activation_name(3)
    ('RELU', 'RELU6')
    """
    return schema.ACTIVATION_FUNCTIONS.get(int(code), str(code))


@dataclass(frozen=True)
class Tensor:
    """One tensor of a subgraph.

    ``shape_signature`` is None when the file has none (then it equals
    ``shape``); a ``-1`` in it marks a dynamic dimension. ``is_constant`` is
    True when the tensor's buffer holds data (weights, biases, shape/axis
    operands); ``buffer_bytes`` is that data's size. ``sparse`` marks a tensor
    stored in TFLite's sparse format (its buffer is smaller than its shape).
    """

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int
    buffer: int
    is_constant: bool
    buffer_bytes: int
    is_variable: bool = False
    sparse: bool = False

    @property
    def is_dynamic(self) -> bool:
        """True when any dimension of the shape signature is -1."""
        return self.shape_signature is not None and any(d < 0 for d in self.shape_signature)

    @property
    def quantized(self) -> bool:
        return len(self.scale) > 0

    @property
    def num_elements(self) -> int:
        """Elements of ``shape`` (a Python int: never overflows; 1 for a scalar)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int | None:
        """Bytes the tensor's data takes, or None for types of no fixed size (string, int4, ...)."""
        size = DTYPE_SIZES.get(self.dtype)
        return None if size is None else size * self.num_elements

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "shape_signature": None if self.shape_signature is None else list(self.shape_signature),
            "scale": list(self.scale),
            "zero_point": list(self.zero_point),
            "quantized_dimension": self.quantized_dimension,
            "is_constant": self.is_constant,
            "buffer_bytes": self.buffer_bytes,
        }


@dataclass(frozen=True)
class Operator:
    """One operator, in execution order.

    ``op`` is the builtin name (``"CONV_2D"``) or, for custom ops, the custom
    code (``"edgetpu-custom-op"``); ``builtin_code`` is then 32 (CUSTOM).
    ``options`` holds the builtin options as a plain dict (for CONV_2D e.g.
    ``fusedActivationFunction``, ``dilationWFactor``, ``strideH``; the field
    names of the schema's object API) and ``options_type`` the options table
    name. ``intermediates`` lists the tensors an op keeps inside itself (the
    int16 gate outputs of a quantized LSTM).
    """

    index: int
    op: str
    builtin_code: int
    custom_code: str | None
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    options_type: str | None = None
    intermediates: tuple[int, ...] = ()

    @property
    def is_custom(self) -> bool:
        return self.custom_code is not None


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Model:
    """A parsed .tflite model. Build it with :func:`read_model`."""

    source: str
    size_bytes: int
    schema_version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    metadata: dict[str, bytes]
    op_codes: tuple[tuple[str, int], ...]
    _data: bytes = field(repr=False, compare=False, default=b"")
    _buffer_spans: tuple[tuple[int, int], ...] = field(repr=False, compare=False, default=())

    @property
    def min_runtime_version(self) -> str | None:
        """The converter's ``min_runtime_version`` metadata (e.g. ``"1.14.0"``), or None."""
        raw = self.metadata.get("min_runtime_version")
        if raw is None:
            return None
        text = raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()
        return text or None

    @property
    def has_edgetpu_custom_op(self) -> bool:
        """True when the model was compiled by ``edgetpu_compiler``."""
        return any(op.custom_code == EDGETPU_CUSTOM_OP for sg in self.subgraphs for op in sg.operators)

    @property
    def main(self) -> Subgraph:
        """Subgraph 0, the one the interpreter runs."""
        return self.subgraphs[0]

    @property
    def data(self) -> bytes:
        """The flatbuffer's bytes, as read."""
        return self._data

    def buffer_data(self, buffer_index: int) -> np.ndarray | None:
        """The raw bytes of a buffer as a uint8 numpy view, or None when empty."""
        if buffer_index <= 0 or buffer_index >= len(self._buffer_spans):
            return None
        start, size = self._buffer_spans[buffer_index]
        if size <= 0:
            return None
        return np.frombuffer(self._data, dtype=np.uint8, count=size, offset=start)

    def tensor_data(self, tensor: Tensor) -> np.ndarray | None:
        """A constant tensor's values as a numpy array of its dtype and shape, or None."""
        raw = self.buffer_data(tensor.buffer)
        if raw is None:
            return None
        if tensor.dtype == "int4" and raw.size == (tensor.num_elements + 1) // 2:
            return unpack_int4(raw, tensor.num_elements).reshape(tensor.shape)
        try:
            dt = np.dtype(tensor.dtype)
        except TypeError:
            return raw
        if raw.size % dt.itemsize:
            return raw
        arr = raw.view(dt)
        fits = arr.size == tensor.num_elements and min(tensor.shape, default=0) >= 0
        return arr.reshape(tensor.shape) if fits else arr


def unpack_int4(raw: np.ndarray, count: int) -> np.ndarray:
    """TFLite's packed int4 (two values a byte, the first in the low nibble) as int8 values in [-8, 7].

    Example:
        >>> unpack_int4(np.array([0x7F, 0x08], dtype=np.uint8), 3).tolist()
        [-1, 7, -8]
    """
    low = (raw & 0x0F).astype(np.int8)
    high = (raw >> 4).astype(np.int8)
    vals = np.stack([low, high], axis=-1).reshape(-1)[:count]
    return np.where(vals > 7, vals - 16, vals).astype(np.int8)


def _describe_found(data: bytes) -> str:
    if not data:
        return "an empty file (0 bytes)"
    if data.startswith(b"\x89PNG"):
        return "a PNG image"
    if data.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if data.startswith(b"PK\x03\x04"):
        return "a ZIP archive (a Keras .keras file or a zipped model?)"
    if data.startswith(b"\x89HDF"):
        return "an HDF5 file (a Keras .h5 model?)"
    if len(data) < 8:
        return f"only {len(data)} bytes"
    return f"identifier {bytes(data[4:8])!r}"


def _read_source(model: ModelSource) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "<bytes>"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        name = str(path)
        try:
            return path.read_bytes(), name
        except FileNotFoundError:
            raise InvalidModelError(f"{name}: no such file; expected a .tflite model") from None
        except IsADirectoryError:
            raise InvalidModelError(f"{name}: is a directory; expected a .tflite model file") from None
        except OSError as e:
            raise InvalidModelError(f"{name}: cannot read the model ({e.strerror or e})") from None
    raise InvalidModelError(
        f"expected a path to a .tflite file, its bytes or an edgetpu.model.Model; got {type(model).__name__}"
    )


def load_bytes(
    model: str | os.PathLike[str] | bytes | bytearray | memoryview, name: str | None = None
) -> tuple[bytes, str]:
    """Read a model's bytes from a path or buffer and check the TFLite file identifier.

    Returns ``(data, name)``, ``name`` being the path (or ``name``, or ``"<bytes>"``)
    for messages.

    Raises:
        InvalidModelError: a missing or unreadable file, or content that is not a
            TFLite flatbuffer (what was found is named: empty, PNG, .keras zip, ...).
    """
    data, source = _read_source(model)
    name = name or source
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise InvalidModelError(
            f"{name}: not a TFLite model: expected a TFLite flatbuffer with file identifier "
            f'"TFL3" at bytes 4-8, found {_describe_found(data)}'
        )
    return data, name


def read_model(model: ModelSource, name: str | None = None) -> Model:
    """Parse a .tflite model from a path, from bytes, or return a :class:`Model` as is.

    ``name`` is what messages call the model when ``model`` is bytes.

    Raises:
        InvalidModelError: the path is missing or the content is not a readable
            TFLite flatbuffer (wrong identifier, truncated, corrupt).
    """
    if isinstance(model, Model):
        return model
    data, name = load_bytes(model, name)
    return _parse(data, name)


def _read_buffers(root: Table, r: Reader) -> tuple[tuple[int, int], ...]:
    """``(start, size)`` of every buffer's data in the file; (0, 0) for an empty buffer."""
    spans: list[tuple[int, int]] = []
    for i, b in enumerate(root.tables(_MODEL["Buffers"], "buffers")):
        offset = b.scalar(_BUFFER["Offset"], "Q", 0)
        if offset > 1:  # models over 2 GB keep buffer data after the flatbuffer, addressed by offset
            size = b.scalar(_BUFFER["Size"], "Q", 0)
            r.check_span(offset, size, f"data of buffer {i}")
            spans.append((offset, size))
            continue
        vec = b.vector(_BUFFER["Data"], 1, f"data of buffer {i}")
        spans.append((0, 0) if vec is None else vec)
    return tuple(spans)


def _read_op_codes(root: Table) -> list[tuple[str, int, int, str | None]]:
    """``(op name, builtin code, version, custom code)`` per operator code."""
    codes = []
    for i, oc in enumerate(root.tables(_MODEL["OperatorCodes"], "operator_codes")):
        code = max(oc.scalar(_OPCODE["BuiltinCode"], "i", 0), oc.scalar(_OPCODE["DeprecatedBuiltinCode"], "b", 0))
        custom = oc.string(_OPCODE["CustomCode"], f"custom code of operator code {i}")
        version = oc.scalar(_OPCODE["Version"], "i", 1)
        if code == _CUSTOM:
            codes.append((custom or "CUSTOM", code, version, custom))
        else:
            codes.append((builtin_op_name(code), code, version, None))
    return codes


def _read_options(table: Table | None, layout) -> dict[str, Any]:
    if table is None or layout is None:
        return {}
    name, fields = layout
    out: dict[str, Any] = {}
    for fname, kind, slot, default in fields:
        if kind[0] == "[":  # a vector: None when absent, as the schema's object API gives it
            vec = table.numbers(slot, kind[1], f"{name}.{fname}") if table.has(slot) else None
            out[fname] = None if vec is None else list(vec)
        else:
            out[fname] = table.scalar(slot, kind, default)
    return out


def _operator_options(o: Table) -> tuple[str | None, dict[str, Any]]:
    """``(options table name, options dict)`` of an operator (either options union)."""
    for type_slot, value_slot, layouts in (
        (_OPERATOR["BuiltinOptionsType"], _OPERATOR["BuiltinOptions"], schema.BUILTIN_OPTIONS),
        (_OPERATOR["BuiltinOptions2Type"], _OPERATOR["BuiltinOptions2"], schema.BUILTIN_OPTIONS2),
    ):
        kind = o.scalar(type_slot, "B", 0)
        if kind:
            layout = layouts.get(kind)
            table = o.table(value_slot, "builtin options")
            return (layout[0] if layout else f"options_{kind}"), _read_options(table, layout)
    return None, {}


class _Context:
    """What reading one subgraph needs from the rest of the model."""

    def __init__(self, reader: Reader, spans, op_codes):
        self.reader = reader
        self.spans = spans
        self.op_codes = op_codes

    def index(self, i: int, n: int, what: str) -> int:
        if not 0 <= i < n:
            self.reader.fail(f"{what} index {i} out of range 0..{n - 1}")
        return i


def _read_tensor(t: Table, ti: int, ctx: _Context) -> Tensor:
    buf = t.scalar(_TENSOR["Buffer"], "I", 0)
    if buf:
        ctx.index(buf, len(ctx.spans), f"tensor {ti} buffer")
    scale: tuple = ()
    zp: tuple = ()
    qdim = 0
    q = t.table(_TENSOR["Quantization"], f"quantization of tensor {ti}")
    if q is not None:
        scale = q.numbers(_QUANT["Scale"], "f", f"scales of tensor {ti}")
        zp = q.numbers(_QUANT["ZeroPoint"], "q", f"zero points of tensor {ti}")
        qdim = q.scalar(_QUANT["QuantizedDimension"], "i", 0)
    sig = t.numbers(_TENSOR["ShapeSignature"], "i", f"shape signature of tensor {ti}")
    size = ctx.spans[buf][1] if buf else 0
    return Tensor(
        index=ti,
        name=t.string(_TENSOR["Name"], f"name of tensor {ti}") or "",
        dtype=dtype_name(t.scalar(_TENSOR["Type"], "b", 0)),
        shape=t.numbers(_TENSOR["Shape"], "i", f"shape of tensor {ti}"),
        shape_signature=sig or None,
        scale=scale,
        zero_point=zp,
        quantized_dimension=qdim,
        buffer=buf,
        is_constant=size > 0,
        buffer_bytes=size,
        is_variable=bool(t.scalar(_TENSOR["IsVariable"], "?", False)),
        sparse=t.has(_TENSOR["Sparsity"]),
    )


def _read_operator(o: Table, oi: int, n_tensors: int, ctx: _Context) -> Operator:
    ci = ctx.index(o.scalar(_OPERATOR["OpcodeIndex"], "I", 0), len(ctx.op_codes), f"operator {oi} opcode")
    opname, code, version, custom = ctx.op_codes[ci]
    lists = []
    for key in ("Inputs", "Outputs", "Intermediates"):
        idx = o.numbers(_OPERATOR[key], "i", f"{key.lower()} of operator {oi}")
        for x in idx:
            if x != -1:  # -1 marks an omitted optional tensor
                ctx.index(x, n_tensors, f"operator {oi} ({opname}) {key.lower()[:-1]} tensor")
        lists.append(idx)
    options_type, options = _operator_options(o)
    return Operator(index=oi, op=opname, builtin_code=code, custom_code=custom, version=version,
                    inputs=lists[0], outputs=lists[1], options=options, options_type=options_type,
                    intermediates=lists[2])


def _read_subgraph(sg: Table, si: int, ctx: _Context) -> Subgraph:
    tensors = tuple(_read_tensor(t, ti, ctx) for ti, t in enumerate(sg.tables(_SUBGRAPH["Tensors"], "tensors")))
    n = len(tensors)
    ops = tuple(_read_operator(o, oi, n, ctx) for oi, o in enumerate(sg.tables(_SUBGRAPH["Operators"], "operators")))
    io = []
    for key in ("Inputs", "Outputs"):
        idx = sg.numbers(_SUBGRAPH[key], "i", f"subgraph {si} {key.lower()}")
        for x in idx:
            ctx.index(x, n, f"subgraph {si} {key.lower()[:-1]} tensor")
        io.append(idx)
    return Subgraph(index=si, name=sg.string(_SUBGRAPH["Name"], f"name of subgraph {si}") or "",
                    tensors=tensors, operators=ops, inputs=io[0], outputs=io[1])


def _read_metadata(root: Table, spans, data: bytes) -> dict[str, bytes]:
    metadata: dict[str, bytes] = {}
    for i, md in enumerate(root.tables(_MODEL["Metadata"], "metadata")):
        bi = md.scalar(_METADATA["Buffer"], "I", 0)
        if bi < len(spans):
            start, size = spans[bi]
            metadata[md.string(_METADATA["Name"], f"name of metadata {i}") or ""] = bytes(data[start : start + size])
    return metadata


def _parse(data: bytes, name: str) -> Model:
    r = Reader(data, name)
    root = r.root()
    spans = _read_buffers(root, r)
    op_codes = _read_op_codes(root)
    ctx = _Context(r, spans, op_codes)
    tables = root.tables(_MODEL["Subgraphs"], "subgraphs")
    subgraphs = tuple(_read_subgraph(sg, si, ctx) for si, sg in enumerate(tables))
    if not subgraphs:
        raise InvalidModelError(f"{name}: TFLite model has no subgraph")
    return Model(
        source=name,
        size_bytes=len(data),
        schema_version=root.scalar(_MODEL["Version"], "I", 0),
        description=root.string(_MODEL["Description"], "description") or "",
        subgraphs=subgraphs,
        metadata=_read_metadata(root, spans, data),
        op_codes=tuple((n, v) for n, _, v, _ in op_codes),
        _data=data,
        _buffer_spans=spans,
    )


def is_compiled(model: ModelSource, name: str | None = None) -> bool:
    """True when the model holds ``edgetpu-custom-op`` (compiled by ``edgetpu_compiler``).

    Reads only the operator-code table, so it is cheap even for large models.
    ``name`` is the file the bytes came from, for error messages.

    Raises:
        InvalidModelError: the input is not a readable .tflite model.
    """
    if isinstance(model, Model):
        return model.has_edgetpu_custom_op
    data, name = load_bytes(model, name)
    return any(custom == EDGETPU_CUSTOM_OP for _, _, _, custom in _read_op_codes(Reader(data, name).root()))
