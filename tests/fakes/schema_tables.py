"""Derive the tables of ``edgetpu/schema.py`` from the generated TFLite schema module.

``edgetpu`` reads .tflite files without ``ai_edge_litert``: it ships the few
facts of the flatbuffer schema it needs (enum names, the vtable slot of every
field it reads, the layout of every builtin-options table) in
``edgetpu/schema.py``. This module computes the same facts from
``ai_edge_litert.schema_py_generated`` (flatc's Python output), so a test can
prove the shipped tables match the schema, and so they can be regenerated when
the schema grows:

    PYTHONPATH=. python tests/fakes/schema_tables.py > edgetpu/schema.py
"""

from __future__ import annotations

import functools
import pprint
import re
from types import ModuleType

#: flatbuffers number type -> struct format character.
_KINDS = {
    "BoolFlags": "?", "Int8Flags": "b", "Uint8Flags": "B", "Int16Flags": "h", "Uint16Flags": "H",
    "Int32Flags": "i", "Uint32Flags": "I", "Int64Flags": "q", "Uint64Flags": "Q",
    "Float32Flags": "f", "Float64Flags": "d",
}

#: Tables whose fields the reader addresses by slot (vtable offset), field by field.
CORE_TABLES = ("Model", "SubGraph", "Tensor", "Operator", "OperatorCode", "Buffer", "Metadata",
               "QuantizationParameters")

_METHOD = re.compile(
    r"    def (\w+)\(self(, j)?\):\n"
    r"        o = flatbuffers\.number_types\.UOffsetTFlags\.py_type\(self\._tab\.Offset\((\d+)\)\)\n"
    r"(.*?)(?=\n    # |\n    def |\Z)",
    re.DOTALL,
)


def _enum(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@functools.cache
def _class_sources(path: str) -> dict[str, str]:
    """Source of every top-level class of a module file (read once: inspect.getsource re-parses per call)."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    out = {}
    for m in re.finditer(r"^class (\w+)\(", src, re.MULTILINE):
        end = re.compile(r"^\S", re.MULTILINE).search(src, m.end())  # the next top-level statement ends the class
        out[m.group(1)] = src[m.start() : end.start() if end else len(src)]
    return out


def _methods(schema: ModuleType, table: str):
    """(method name, is indexed vector accessor, slot, body) of a generated table class."""
    src = _class_sources(schema.__file__)[table]
    return [(m.group(1), bool(m.group(2)), int(m.group(3)), m.group(4)) for m in _METHOD.finditer(src)]


def _field_name(schema: ModuleType, table: str, method: str) -> str:
    name = method[0].lower() + method[1:]
    obj = getattr(schema, table + "T")()
    if not hasattr(obj, name):
        raise AssertionError(f"{table}T has no attribute {name!r} for accessor {method}")
    return name


def _scalar_default(body: str, kind: str):
    tail = body.strip().splitlines()[-1].strip()
    value = tail[len("return "):]
    if kind == "?":
        return value == "True"
    return float(value) if kind in "fd" else int(value)


def option_fields(schema: ModuleType, table: str) -> tuple[tuple[str, str, int, object], ...]:
    """``(field, kind, slot, default)`` of every scalar or scalar-vector field of an options table.

    ``kind`` is a struct format character, prefixed with ``[`` for a vector;
    nested tables, unions and strings are left out (no check reads them).
    """
    out = []
    for method, indexed, slot, body in _methods(schema, table):
        if method.endswith(("AsNumpy", "Length", "IsNone")) or "Indirect" in body or "String" in body:
            continue
        m = re.search(r"number_types\.(\w+Flags)", body)
        if not m or m.group(1) not in _KINDS:
            continue
        kind = _KINDS[m.group(1)]
        name = _field_name(schema, table, method)
        if indexed:
            out.append((name, "[" + kind, slot, ()))
        else:
            out.append((name, kind, slot, _scalar_default(body, kind)))
    return tuple(out)


def core_slots(schema: ModuleType) -> dict[str, dict[str, int]]:
    """``{table: {accessor: slot}}`` for the tables the reader walks field by field."""
    return {
        t: {name: slot for name, _, slot, _ in _methods(schema, t) if not name.endswith(("AsNumpy", "Length", "IsNone"))}
        for t in CORE_TABLES
    }


def tables(schema: ModuleType) -> dict[str, object]:
    """Every table of ``edgetpu/schema.py``, computed from the generated schema module."""
    opts = _enum(schema.BuiltinOptions)
    opts2 = _enum(schema.BuiltinOptions2)
    return {
        "BUILTIN_OPERATORS": dict(sorted(_enum(schema.BuiltinOperator).items())),
        "TENSOR_TYPES": dict(sorted(_enum(schema.TensorType).items())),
        "ACTIVATION_FUNCTIONS": dict(sorted(_enum(schema.ActivationFunctionType).items())),
        "BUILTIN_OPTIONS": {c: (n, option_fields(schema, n)) for c, n in sorted(opts.items()) if c},
        "BUILTIN_OPTIONS2": {c: (n, option_fields(schema, n)) for c, n in sorted(opts2.items()) if c},
        "SLOTS": core_slots(schema),
    }


_HEADER = '''"""The facts of the TFLite flatbuffer schema that `edgetpu` reads (generated; do not edit).

Generated by ``tests/fakes/schema_tables.py`` from
``ai_edge_litert.schema_py_generated`` (flatc's output for TFLite's
schema.fbs), and checked against it by ``tests/test_edgetpu_schema.py``:

* enum names: ``BUILTIN_OPERATORS``, ``TENSOR_TYPES``, ``ACTIVATION_FUNCTIONS``;
* ``SLOTS``: the vtable offset of each field of the tables the reader walks;
* ``BUILTIN_OPTIONS`` / ``BUILTIN_OPTIONS2``: for each options union member,
  its table name and ``(field, kind, slot, default)`` per scalar field
  (``kind`` a struct format character, ``[`` + character for a vector).

With these, :mod:`edgetpu.flatbuffer` reads a model with the standard library
and numpy alone: no generated schema module, no TensorFlow.
"""

from __future__ import annotations

__all__ = ["ACTIVATION_FUNCTIONS", "BUILTIN_OPERATORS", "BUILTIN_OPTIONS", "BUILTIN_OPTIONS2", "SLOTS",
           "TENSOR_TYPES"]
'''


def render(t: dict[str, object]) -> str:
    parts = [_HEADER]
    for name, value in t.items():
        parts.append(f"\n{name} = {pprint.pformat(value, width=118, sort_dicts=False)}\n")
    return "".join(parts)


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    from ai_edge_litert import schema_py_generated

    print(render(tables(schema_py_generated)), end="")
