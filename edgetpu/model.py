"""Read a .tflite flatbuffer into plain Python objects.

A .tflite file is a FlatBuffer whose root is a ``Model`` table (schema in
``ai_edge_litert.schema_py_generated``) with the file identifier ``TFL3`` at
bytes 4-8. :func:`read_model` walks that table once and returns a
:class:`Model` made of frozen dataclasses: subgraphs, operators in execution
order (the order of ``SubGraph.operators``), tensors with their quantization,
metadata (including the converter's ``min_runtime_version``) and whether the
model already holds the Edge TPU custom op (``edgetpu-custom-op``), i.e. was
produced by ``edgetpu_compiler``.

Only the flatbuffers package and numpy are needed; no TensorFlow. Buffers are
never copied element by element: sizes come from the vector lengths, and
contents (when asked for with :meth:`Model.buffer_data`) are numpy views.

Example:
    >>> from edgetpu.model import read_model
    >>> m = read_model("mobilenet_v2_int8.tflite")          # doctest: +SKIP
    >>> [op.op for op in m.subgraphs[0].operators][:3]       # doctest: +SKIP
    ['QUANTIZE', 'CONV_2D', 'DEPTHWISE_CONV_2D']

Bad input (a missing path, an empty file, a PNG, random bytes, a truncated
model) raises :class:`edgetpu.errors.InvalidModelError` naming the file, what
was expected and what was found.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from edgetpu.errors import EdgeTPUError, InvalidModelError

__all__ = [
    "EDGETPU_CUSTOM_OP",
    "FILE_IDENTIFIER",
    "Model",
    "Operator",
    "Subgraph",
    "Tensor",
    "is_compiled",
    "SchemaUnavailableError",
    "SCHEMA_MODULES",
    "load_bytes",
    "read_model",
]

#: Custom-op code that ``edgetpu_compiler`` writes for the part mapped to the TPU.
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
#: FlatBuffer file identifier of every .tflite file (bytes 4..8).
FILE_IDENTIFIER = b"TFL3"

ModelSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, "Model"]


#: Where the generated .tflite schema is found, in order: ai-edge-litert ships
#: it; TensorFlow has a copy (importing it imports TensorFlow, the last resort,
#: as for the interpreter); tflite_runtime ships none.
SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")


class SchemaUnavailableError(EdgeTPUError, ImportError):
    """No package providing the .tflite flatbuffer schema is installed."""


@functools.lru_cache(maxsize=None)
def _schema():
    # Imported lazily: the schema module is large (~20k lines) and only needed
    # when a model is actually read.
    for module in SCHEMA_MODULES:
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise SchemaUnavailableError(
        "reading a .tflite model's ops needs the flatbuffer schema that ships with ai-edge-litert "
        "(`pip install ai-edge-litert flatbuffers`); tried " + ", ".join(SCHEMA_MODULES)
    )


def _enum_names(enum_cls) -> Dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


_CACHE: Dict[str, Dict[int, str]] = {}


def _names(kind: str) -> Dict[int, str]:
    if kind not in _CACHE:
        s = _schema()
        _CACHE[kind] = _enum_names(getattr(s, kind))
    return _CACHE[kind]


def builtin_op_name(code: int) -> str:
    """Name of a ``BuiltinOperator`` code, e.g. 3 -> ``"CONV_2D"``."""
    return _names("BuiltinOperator").get(code, f"BUILTIN_{code}")


def dtype_name(tensor_type: int) -> str:
    """Lower-case name of a ``TensorType`` code, e.g. 9 -> ``"int8"``."""
    name = _names("TensorType").get(tensor_type)
    return name.lower() if name else f"type_{tensor_type}"


@dataclass(frozen=True)
class Tensor:
    """One tensor of a subgraph.

    ``shape_signature`` is None when the file has none (then it equals
    ``shape``); a ``-1`` in it marks a dynamic dimension. ``is_constant`` is
    True when the tensor's buffer holds data (weights, biases, shape/axis
    operands); ``buffer_bytes`` is that data's size.
    """

    index: int
    name: str
    dtype: str
    shape: Tuple[int, ...]
    shape_signature: Optional[Tuple[int, ...]]
    scale: Tuple[float, ...]
    zero_point: Tuple[int, ...]
    quantized_dimension: int
    buffer: int
    is_constant: bool
    buffer_bytes: int
    is_variable: bool = False

    @property
    def is_dynamic(self) -> bool:
        """True when any dimension of the shape signature is -1."""
        return self.shape_signature is not None and any(d < 0 for d in self.shape_signature)

    @property
    def quantized(self) -> bool:
        return len(self.scale) > 0

    def to_dict(self) -> Dict[str, Any]:
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
    ``fusedActivationFunction``, ``dilationWFactor``, ``strideH``; the names
    of the schema's object API) and ``options_type`` the options table name.
    """

    index: int
    op: str
    builtin_code: int
    custom_code: Optional[str]
    version: int
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    options: Dict[str, Any] = field(default_factory=dict)
    options_type: Optional[str] = None

    @property
    def is_custom(self) -> bool:
        return self.custom_code is not None


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: Tuple[Tensor, ...]
    operators: Tuple[Operator, ...]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]


@dataclass(frozen=True)
class Model:
    """A parsed .tflite model. Build it with :func:`read_model`."""

    source: str
    size_bytes: int
    schema_version: int
    description: str
    subgraphs: Tuple[Subgraph, ...]
    metadata: Dict[str, bytes]
    op_codes: Tuple[Tuple[str, int], ...]
    _data: bytes = field(repr=False, compare=False, default=b"")
    _buffer_spans: Tuple[Tuple[int, int], ...] = field(repr=False, compare=False, default=())

    @property
    def min_runtime_version(self) -> Optional[str]:
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

    def buffer_data(self, buffer_index: int) -> Optional[np.ndarray]:
        """The raw bytes of a buffer as a uint8 numpy view, or None when empty."""
        if buffer_index <= 0 or buffer_index >= len(self._buffer_spans):
            return None
        start, size = self._buffer_spans[buffer_index]
        if size <= 0:
            return None
        return np.frombuffer(self._data, dtype=np.uint8, count=size, offset=start)

    def tensor_data(self, tensor: Tensor) -> Optional[np.ndarray]:
        """A constant tensor's values as a numpy array of its dtype and shape, or None."""
        raw = self.buffer_data(tensor.buffer)
        if raw is None:
            return None
        try:
            dt = np.dtype(tensor.dtype)
        except TypeError:
            return raw
        if raw.size % dt.itemsize:
            return raw
        arr = raw.view(dt)
        n = int(np.prod(tensor.shape)) if tensor.shape else 1
        return arr.reshape(tensor.shape) if arr.size == n else arr


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


def _read_source(model: ModelSource) -> Tuple[bytes, str]:
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


def load_bytes(model: Union[str, "os.PathLike[str]", bytes, bytearray, memoryview], name: Optional[str] = None) -> Tuple[bytes, str]:
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


def read_model(model: ModelSource) -> Model:
    """Parse a .tflite model from a path, from bytes, or return a :class:`Model` as is.

    Raises:
        InvalidModelError: the path is missing or the content is not a readable
            TFLite flatbuffer (wrong identifier, truncated, corrupt).
    """
    if isinstance(model, Model):
        return model
    data, name = load_bytes(model)
    try:
        return _parse(data, name)
    except EdgeTPUError:  # InvalidModelError, SchemaUnavailableError: already say what is wrong
        raise
    except Exception as e:  # flatbuffers reports corruption as IndexError/struct.error/...
        raise InvalidModelError(
            f"{name}: truncated or corrupt TFLite flatbuffer ({len(data)} bytes): expected a complete "
            f'model with identifier "TFL3", reading it failed with {type(e).__name__}: {e}'
        ) from None


class _Guard:
    """Checks vector lengths and indices against the file so corruption fails fast."""

    def __init__(self, name: str, size: int):
        self.name = name
        self.size = size

    def length(self, n: int, what: str, item_bytes: int = 4) -> int:
        if n < 0 or n * item_bytes > self.size:
            raise InvalidModelError(
                f"{self.name}: corrupt TFLite flatbuffer: {what} claims {n} entries in a {self.size}-byte file"
            )
        return n

    def index(self, i: int, n: int, what: str) -> int:
        if not 0 <= i < n:
            raise InvalidModelError(f"{self.name}: corrupt TFLite flatbuffer: {what} index {i} out of range 0..{n - 1}")
        return i


def _vec(obj, name: str, guard: _Guard, item_bytes: int = 4) -> Tuple:
    """Read an int/float vector field via its *AsNumpy accessor."""
    if getattr(obj, name + "IsNone")():
        return ()
    n = guard.length(getattr(obj, name + "Length")(), name, item_bytes)
    if n == 0:
        return ()
    arr = getattr(obj, name + "AsNumpy")()
    if not isinstance(arr, np.ndarray) or arr.size != n:
        raise InvalidModelError(f"{guard.name}: corrupt TFLite flatbuffer: vector {name} unreadable")
    return tuple(arr.tolist())


def _str(b) -> str:
    if b is None:
        return ""
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return str(b)


def _options_dict(opt) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in vars(opt).items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif not isinstance(v, (int, float, bool, str, list, tuple, type(None))):
            continue  # nested tables: not needed for the checks
        out[k] = v
    return out


def _parse(data: bytes, name: str) -> Model:
    s = _schema()
    g = _Guard(name, len(data))
    root = s.Model.GetRootAs(data, 0)
    version = root.Version()

    # Buffers: only offsets and sizes (no copies).
    n_buf = g.length(root.BuffersLength(), "buffers")
    spans: List[Tuple[int, int]] = []
    for i in range(n_buf):
        b = root.Buffers(i)
        off = b.Offset()
        if off > 1:  # large models (>2 GB) keep data outside the flatbuffer
            size = b.Size()
            if off + size > len(data):
                raise InvalidModelError(
                    f"{name}: truncated TFLite model: buffer {i} points at bytes {off}..{off + size} "
                    f"of a {len(data)}-byte file"
                )
            spans.append((off, size))
            continue
        n = b.DataLength()
        if n == 0:
            spans.append((0, 0))
            continue
        # Vector start = position of the vector field in the table.
        o = b._tab.Offset(4)
        start = b._tab.Vector(o)
        if start + n > len(data):
            raise InvalidModelError(
                f"{name}: truncated TFLite model: buffer {i} needs bytes {start}..{start + n} of a {len(data)}-byte file"
            )
        spans.append((start, n))

    # Operator codes.
    n_codes = g.length(root.OperatorCodesLength(), "operator_codes")
    op_codes: List[Tuple[str, int, int, Optional[str]]] = []
    for i in range(n_codes):
        oc = root.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        custom = oc.CustomCode()
        custom_s = _str(custom) if custom is not None else None
        if code == s.BuiltinOperator.CUSTOM:
            opname = custom_s or "CUSTOM"
        else:
            opname = builtin_op_name(code)
            custom_s = None
        op_codes.append((opname, code, int(oc.Version()), custom_s))

    opt_names = _names("BuiltinOptions")
    opt2_names = _names("BuiltinOptions2")

    # Subgraphs.
    n_sg = g.length(root.SubgraphsLength(), "subgraphs")
    if n_sg == 0:
        raise InvalidModelError(f"{name}: TFLite model has no subgraph")
    subgraphs: List[Subgraph] = []
    for si in range(n_sg):
        sg = root.Subgraphs(si)
        n_t = g.length(sg.TensorsLength(), "tensors")
        tensors: List[Tensor] = []
        for ti in range(n_t):
            t = sg.Tensors(ti)
            buf = int(t.Buffer())
            if buf:
                g.index(buf, max(n_buf, 1), f"tensor {ti} buffer")
            q = t.Quantization()
            scale: Tuple = ()
            zp: Tuple = ()
            qdim = 0
            if q is not None:
                scale = _vec(q, "Scale", g)
                zp = _vec(q, "ZeroPoint", g, 8)
                qdim = int(q.QuantizedDimension())
            sig = _vec(t, "ShapeSignature", g)
            size = spans[buf][1] if 0 < buf < len(spans) else 0
            tensors.append(
                Tensor(
                    index=ti,
                    name=_str(t.Name()),
                    dtype=dtype_name(t.Type()),
                    shape=tuple(int(d) for d in _vec(t, "Shape", g)),
                    shape_signature=tuple(int(d) for d in sig) if sig else None,
                    scale=tuple(float(x) for x in scale),
                    zero_point=tuple(int(x) for x in zp),
                    quantized_dimension=qdim,
                    buffer=buf,
                    is_constant=size > 0,
                    buffer_bytes=size,
                    is_variable=bool(t.IsVariable()),
                )
            )
        n_ops = g.length(sg.OperatorsLength(), "operators")
        ops: List[Operator] = []
        for oi in range(n_ops):
            o = sg.Operators(oi)
            ci = g.index(int(o.OpcodeIndex()), n_codes, f"operator {oi} opcode")
            opname, code, ver, custom = op_codes[ci]
            ins = tuple(int(x) for x in _vec(o, "Inputs", g))
            outs = tuple(int(x) for x in _vec(o, "Outputs", g))
            for x in ins + outs:
                if x != -1:  # -1 marks an omitted optional input
                    g.index(x, n_t, f"operator {oi} tensor")
            options: Dict[str, Any] = {}
            otype = None
            bt = int(o.BuiltinOptionsType())
            if bt:
                otype = opt_names.get(bt)
                table = o.BuiltinOptions()
                if table is not None:
                    obj = s.BuiltinOptionsCreator(bt, table)
                    if obj is not None:
                        options = _options_dict(obj)
            else:
                bt2 = int(o.BuiltinOptions2Type()) if hasattr(o, "BuiltinOptions2Type") else 0
                if bt2:
                    otype = opt2_names.get(bt2)
                    table = o.BuiltinOptions2()
                    if table is not None:
                        obj = s.BuiltinOptions2Creator(bt2, table)
                        if obj is not None:
                            options = _options_dict(obj)
            ops.append(
                Operator(
                    index=oi,
                    op=opname,
                    builtin_code=code,
                    custom_code=custom,
                    version=ver,
                    inputs=ins,
                    outputs=outs,
                    options=options,
                    options_type=otype,
                )
            )
        sg_in = tuple(int(x) for x in _vec(sg, "Inputs", g))
        sg_out = tuple(int(x) for x in _vec(sg, "Outputs", g))
        for x in sg_in + sg_out:
            g.index(x, n_t, f"subgraph {si} input/output tensor")
        subgraphs.append(
            Subgraph(
                index=si,
                name=_str(sg.Name()),
                tensors=tuple(tensors),
                operators=tuple(ops),
                inputs=sg_in,
                outputs=sg_out,
            )
        )

    # Metadata.
    metadata: Dict[str, bytes] = {}
    n_md = g.length(root.MetadataLength(), "metadata")
    for i in range(n_md):
        md = root.Metadata(i)
        bi = int(md.Buffer())
        if 0 <= bi < len(spans):
            start, size = spans[bi]
            metadata[_str(md.Name())] = bytes(data[start : start + size])

    return Model(
        source=name,
        size_bytes=len(data),
        schema_version=int(version),
        description=_str(root.Description()),
        subgraphs=tuple(subgraphs),
        metadata=metadata,
        op_codes=tuple((n, v) for n, _, v, _ in op_codes),
        _data=data,
        _buffer_spans=tuple(spans),
    )


def is_compiled(model: ModelSource, name: Optional[str] = None) -> bool:
    """True when the model holds ``edgetpu-custom-op`` (compiled by ``edgetpu_compiler``).

    Reads only the operator-code table, so it is cheap even for large models.
    ``name`` is the file the bytes came from, for error messages.

    Raises:
        InvalidModelError: the input is not a readable .tflite model.
    """
    if isinstance(model, Model):
        return model.has_edgetpu_custom_op
    data, name = load_bytes(model, name)
    try:
        schema = _schema()
    except SchemaUnavailableError:
        # A board with tflite_runtime alone can still run models: without the schema,
        # look for the custom-op code string itself (the compiler writes it verbatim).
        return EDGETPU_CUSTOM_OP.encode() in data
    try:
        root = schema.Model.GetRootAs(data, 0)
        n = _Guard(name, len(data)).length(root.OperatorCodesLength(), "operator_codes")
        for i in range(n):
            code = root.OperatorCodes(i).CustomCode()
            if code is not None and _str(code) == EDGETPU_CUSTOM_OP:
                return True
        return False
    except EdgeTPUError:  # InvalidModelError, SchemaUnavailableError: already say what is wrong
        raise
    except Exception as e:
        raise InvalidModelError(
            f"{name}: truncated or corrupt TFLite flatbuffer ({len(data)} bytes): reading it failed with "
            f"{type(e).__name__}: {e}"
        ) from None
