"""Kept for callers of the old private name: use :func:`edgetpu.interpreter_backend` (``edgetpu.backend``)."""

from edgetpu.backend import BACKENDS
from edgetpu.backend import interpreter_backend as backend

__all__ = ["BACKENDS", "backend"]
