"""The one exception family of the `edgetpu` package.

Every error raised on purpose by `edgetpu` is an :class:`EdgeTPUError`, so a
caller can catch them all at once; the subclasses say what went wrong. Messages
name the file, op or device concerned, what was expected and what was found.
"""

from __future__ import annotations

__all__ = [
    "EdgeTPUError",
    "InvalidModelError",
    "InputError",
    "CompilerNotFoundError",
    "CompilerError",
    "DelegateError",
    "NoEdgeTPUError",
]


class EdgeTPUError(Exception):
    """Base class of every error raised by `edgetpu`."""


class InvalidModelError(EdgeTPUError, ValueError):
    """A file or buffer is not a readable .tflite model (truncated, random bytes, other format)."""


class InputError(EdgeTPUError, ValueError):
    """Input data does not match the model's input tensor (shape, dtype)."""


class CompilerNotFoundError(EdgeTPUError, FileNotFoundError):
    """`edgetpu_compiler` is not installed, or `EDGETPU_COMPILER` points nowhere."""


class CompilerError(EdgeTPUError, RuntimeError):
    """`edgetpu_compiler` ran and failed; the message carries the compiler's own words."""


class DelegateError(EdgeTPUError, RuntimeError):
    """The Edge TPU delegate library could not be loaded, or no device answered."""


class NoEdgeTPUError(DelegateError):
    """A model compiled for the Edge TPU was asked to run where no Edge TPU is present."""
