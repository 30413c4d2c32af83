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
    "VersionError",
    "MalformedModelError",
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


class VersionError(EdgeTPUError, ValueError):
    """A TF Lite runtime version could not be read (expected e.g. ``"2.14"`` or ``"2.14.0"``)."""

    def __init__(self, given: object):
        self.given = given
        super().__init__(f"expected a TF Lite runtime version such as '2.14' or '2.14.0'; got {given!r}")


class MalformedModelError(InvalidModelError):
    """A readable .tflite model whose graph is not sound enough to hand to the interpreter.

    Raised by :func:`edgetpu.validation.validate` (and so by ``check`` and
    ``make_interpreter``) for what would crash or fail the TF Lite interpreter:
    a tensor read before any op produces it, produced twice, a size that does
    not match its buffer, a NaN or negative quantization scale, a stride of 0...
    ``source`` is the file, ``where`` the op or tensor, ``expected`` and
    ``found`` say what is wrong.
    """

    def __init__(self, source: str, where: str, expected: str, found: str):
        self.source = source
        self.where = where
        self.expected = expected
        self.found = found
        super().__init__(f"{source}: invalid model: {where}: expected {expected}, found {found}")

