"""Kept for callers of the old private name: use :func:`edgetpu.atomic_write_bytes` (``edgetpu.files``)."""

from edgetpu.files import atomic_write_bytes

__all__ = ["atomic_write_bytes"]
