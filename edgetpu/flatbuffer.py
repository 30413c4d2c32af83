"""A small, bounds-checked reader of FlatBuffer tables (the .tflite container format).

A FlatBuffer is a byte string: the root is a ``uoffset`` (uint32) to a table;
a table starts with an ``soffset`` (int32) back to its vtable, whose uint16
entries give each field's offset inside the table (0: absent, the default
applies); a vector or string is a ``uoffset`` to a uint32 length followed by
its elements; a vector of tables holds one ``uoffset`` per element. All values
are little-endian (https://flatbuffers.dev/internals/).

The generated Python code of the ``flatbuffers`` package reads through a
private ``_tab`` attribute and fails on corrupt input with whatever
``IndexError`` / ``struct.error`` comes up (and Python's negative indexing can
even read from the end of the buffer). This reader checks every offset and
length against the buffer first and raises
:class:`edgetpu.errors.InvalidModelError` naming the file and what is wrong, so
a truncated or mutated model fails the same way everywhere. It needs nothing
but the standard library; field positions come from :mod:`edgetpu.schema`.

Example:
    >>> from edgetpu.flatbuffer import Reader
    >>> r = Reader(b"\\x0c\\x00\\x00\\x00TFL3\\x04\\x00\\x04\\x00\\x04\\x00\\x00\\x00", "tiny")
    >>> r.root().fields()  # a root table with an empty vtable (no fields set)
    0
"""

from __future__ import annotations

import struct
from typing import NoReturn

from edgetpu.errors import InvalidModelError

__all__ = ["Reader", "Table"]

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_SIZES = {c: struct.calcsize("<" + c) for c in "?bBhHiIqQfd"}


class Reader:
    """Bounds-checked access to one FlatBuffer held in ``data``; ``name`` is used in error messages."""

    __slots__ = ("data", "name", "size")

    def __init__(self, data: bytes, name: str):
        self.data = data
        self.size = len(data)
        self.name = name

    def fail(self, what: str) -> NoReturn:
        """Raise the one error of this module: a corrupt or truncated buffer."""
        raise InvalidModelError(f"{self.name}: corrupt TFLite flatbuffer ({self.size} bytes): {what}")

    def check_span(self, pos: int, n: int, what: str) -> None:
        """Fail unless bytes ``pos .. pos + n`` lie inside the buffer."""
        if pos < 0 or n < 0 or pos + n > self.size:
            self.fail(f"{what} at bytes {pos}..{pos + n} lies outside the buffer")

    def u32(self, pos: int, what: str) -> int:
        self.check_span(pos, 4, what)
        return _U32.unpack_from(self.data, pos)[0]

    def root(self) -> Table:
        """The root table (the ``uoffset`` at byte 0)."""
        return Table(self, self.u32(0, "root offset"), "root table")


class Table:
    """One table of a :class:`Reader`'s buffer; fields are addressed by vtable slot (4, 6, 8, ...)."""

    __slots__ = ("pos", "reader", "vt_size", "vtable")

    def __init__(self, reader: Reader, pos: int, what: str):
        self.reader = reader
        self.pos = pos
        reader.check_span(pos, 4, what)
        vtable = pos - _I32.unpack_from(reader.data, pos)[0]
        reader.check_span(vtable, 4, f"vtable of {what}")
        vt_size = _U16.unpack_from(reader.data, vtable)[0]
        if vt_size < 4 or vt_size % 2:
            reader.fail(f"vtable of {what} has size {vt_size}; expected an even size of at least 4")
        reader.check_span(vtable, vt_size, f"vtable of {what}")
        self.vtable = vtable
        self.vt_size = vt_size

    def fields(self) -> int:
        """How many field slots the vtable has."""
        return (self.vt_size - 4) // 2

    def has(self, slot: int) -> bool:
        """True when the field at ``slot`` is present."""
        return self._field(slot) != 0

    def _field(self, slot: int) -> int:
        """Absolute position of a field, or 0 when the field is absent."""
        if slot >= self.vt_size:
            return 0
        off = _U16.unpack_from(self.reader.data, self.vtable + slot)[0]
        return self.pos + off if off else 0

    def scalar(self, slot: int, kind: str, default):
        """A scalar field; ``kind`` is a struct format character (``"i"``, ``"b"``, ``"?"``, ``"f"``, ...)."""
        at = self._field(slot)
        if not at:
            return default
        self.reader.check_span(at, _SIZES[kind], f"field at slot {slot}")
        return struct.unpack_from("<" + kind, self.reader.data, at)[0]

    def _target(self, slot: int, what: str) -> int | None:
        at = self._field(slot)
        if not at:
            return None
        return at + self.reader.u32(at, what)

    def table(self, slot: int, what: str) -> Table | None:
        """A sub-table field, or None when absent."""
        at = self._target(slot, what)
        return None if at is None else Table(self.reader, at, what)

    def vector(self, slot: int, item_size: int, what: str) -> tuple[int, int] | None:
        """``(start, length)`` of a vector field (elements checked to lie in the buffer), or None."""
        at = self._target(slot, what)
        if at is None:
            return None
        n = self.reader.u32(at, f"length of {what}")
        self.reader.check_span(at + 4, n * item_size, f"{what} ({n} entries of {item_size} bytes)")
        return at + 4, n

    def numbers(self, slot: int, kind: str, what: str) -> tuple:
        """A vector of scalars as a tuple (empty when absent)."""
        vec = self.vector(slot, _SIZES[kind], what)
        if vec is None or vec[1] == 0:
            return ()
        start, n = vec
        return struct.unpack_from(f"<{n}{kind}", self.reader.data, start)

    def string(self, slot: int, what: str) -> str | None:
        """A string field decoded as UTF-8 (FlatBuffer strings are UTF-8 by definition), or None."""
        vec = self.vector(slot, 1, what)
        if vec is None:
            return None
        start, n = vec
        raw = self.reader.data[start : start + n]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self.reader.fail(f"{what} is not valid UTF-8 ({e.reason} at byte {e.start} of {raw[:40]!r})")

    def tables(self, slot: int, what: str) -> list[Table]:
        """A vector of tables (empty when absent)."""
        vec = self.vector(slot, 4, what)
        if vec is None:
            return []
        start, n = vec
        data, r = self.reader.data, self.reader
        return [
            Table(r, p + _U32.unpack_from(data, p)[0], f"{what}[{i}]")
            for i, p in enumerate(range(start, start + 4 * n, 4))
        ]
