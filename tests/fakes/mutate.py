"""Seeded mutants of a .tflite model, as a hostile user makes them (issue 11).

Byte-level: bit flips, overwrites with random bytes, truncations, splices of
two models. Graph-level (through the generated schema's object API, a test-only
dependency): an operator duplicated (the segfault of issue 11), deleted or
moved; an op input or output pointed at another tensor; a tensor's type,
shape, quantization scale or buffer changed; a builtin option (stride,
dilation, filter size, axis, ...) set to 0, a negative or a large value; an
operator code or version changed; the model's inputs or outputs changed.

    for kind, data in mutants(model_bytes, other_bytes, seed=0, n=200): ...
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s


def _bitflip(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(8, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def _overwrite(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    n = int(rng.integers(1, 17))
    i = int(rng.integers(8, max(9, len(b) - n)))
    b[i : i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(b)


def _truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def _splice(data: bytes, other: bytes, rng: np.random.Generator) -> bytes:
    if rng.random() < 0.5:
        return data[: int(rng.integers(8, len(data)))] + other[int(rng.integers(0, len(other))) :]
    i, j = sorted(int(x) for x in rng.integers(8, len(data), 2))
    k = int(rng.integers(8, len(data)))
    return data[:k] + data[i:j] + data[k + (j - i) :]


def _pack(m: s.ModelT) -> bytes:
    fb = flatbuffers.Builder(1024)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(0, len(seq)))]


def _wild(rng: np.random.Generator, n: int) -> int:
    """An index or value: often in range, sometimes just outside, sometimes absurd."""
    return int(_pick(rng, [int(rng.integers(0, max(n, 1))), -1, n, n + 1, -2, 2**31 - 1, int(rng.integers(0, 2**16))]))


def _ops(m: s.ModelT, rng) -> None:
    ops = m.subgraphs[0].operators
    i = int(rng.integers(0, len(ops)))
    how = _pick(rng, ["duplicate", "duplicate_next", "delete", "move"])
    op = ops[i]
    if how == "duplicate":  # the crasher: the copy writes the same outputs
        ops.insert(i + 1, op)
    elif how == "duplicate_next" and i + 1 < len(ops):
        ops[i + 1] = op
    elif how == "delete" and len(ops) > 1:
        del ops[i]
    else:
        ops.insert(int(rng.integers(0, len(ops))), ops.pop(i))


def _wiring(m: s.ModelT, rng) -> None:
    sg = m.subgraphs[0]
    op = _pick(rng, sg.operators)
    field = "inputs" if rng.random() < 0.7 and op.inputs is not None and len(op.inputs) else "outputs"
    arr = np.array(getattr(op, field), dtype=np.int32)
    if len(arr):
        arr[int(rng.integers(0, len(arr)))] = _wild(rng, len(sg.tensors))
        setattr(op, field, arr)


def _tensor(m: s.ModelT, rng) -> None:
    sg = m.subgraphs[0]
    t = _pick(rng, sg.tensors)
    how = _pick(rng, ["type", "shape", "shape", "scale", "zero_point", "buffer", "variable"])
    if how == "type":
        t.type = int(rng.integers(0, 24))
    elif how == "shape" and t.shape is not None and len(t.shape):
        shape = np.array(t.shape, dtype=np.int64)
        shape[int(rng.integers(0, len(shape)))] = _pick(rng, [0, -1, 1, 3, 1000, 65536, 2**20, 2**31 - 1])
        t.shape = shape.astype(np.int32)
    elif how == "scale" and t.quantization is not None and t.quantization.scale is not None:
        t.quantization.scale = np.full(len(t.quantization.scale), _pick(rng, [np.nan, np.inf, 0.0, -1.0, 1e-30, 1e30]),
                                       dtype=np.float32)
    elif how == "zero_point" and t.quantization is not None and t.quantization.zeroPoint is not None:
        t.quantization.zeroPoint = np.full(len(t.quantization.zeroPoint), _pick(rng, [-1000, 255, 2**40]),
                                           dtype=np.int64)
    elif how == "buffer":
        t.buffer = _wild(rng, len(m.buffers))
    else:
        t.isVariable = not t.isVariable


def _option(m: s.ModelT, rng) -> None:
    ops = [o for o in m.subgraphs[0].operators if o.builtinOptions is not None]
    if not ops:
        return
    opts = _pick(rng, ops).builtinOptions
    keys = [k for k, v in vars(opts).items() if isinstance(v, (int, float, bool))]
    if keys:
        setattr(opts, _pick(rng, keys), _pick(rng, [0, -1, 1, 2, 7, 1000, -(2**31)]))


def _code(m: s.ModelT, rng) -> None:
    how = _pick(rng, ["opcode_index", "version", "builtin"])
    if how == "opcode_index":
        _pick(rng, m.subgraphs[0].operators).opcodeIndex = _wild(rng, len(m.operatorCodes))
    elif how == "version":
        _pick(rng, m.operatorCodes).version = _pick(rng, [0, -1, 2, 9, 99])
    else:
        oc = _pick(rng, m.operatorCodes)
        oc.builtinCode = int(rng.integers(0, 210))
        oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)


def _io(m: s.ModelT, rng) -> None:
    sg = m.subgraphs[0]
    field = _pick(rng, ["inputs", "outputs"])
    arr = [int(x) for x in getattr(sg, field)]
    if rng.random() < 0.5 and arr:
        arr[int(rng.integers(0, len(arr)))] = _wild(rng, len(sg.tensors))
    else:
        arr.append(int(rng.integers(0, len(sg.tensors))))
    setattr(sg, field, np.array(arr, dtype=np.int32))


_GRAPH: list[Callable] = [_ops, _ops, _wiring, _tensor, _tensor, _option, _option, _code, _io]


def _graph(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    for _ in range(10):
        m = s.ModelT.InitFromPackedBuf(data, 0)
        f = _pick(rng, _GRAPH)
        f(m, rng)
        try:
            return f.__name__.strip("_"), _pack(m)
        except (struct.error, OverflowError, ValueError, TypeError):  # a value its field cannot hold: pick again
            continue
    return "bitflip", _bitflip(data, rng)


def mutants(data: bytes, other: bytes, *, seed: int, n: int) -> Iterator[tuple[str, bytes]]:
    """``n`` seeded ``(kind, mutated bytes)`` of ``data`` (``other`` is spliced in)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            yield _graph(data, rng)
        elif r < 0.65:
            yield "bitflip", _bitflip(data, rng)
        elif r < 0.8:
            yield "overwrite", _overwrite(data, rng)
        elif r < 0.9:
            yield "truncate", _truncate(data, rng)
        else:
            yield "splice", _splice(data, other, rng)
