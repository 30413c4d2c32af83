"""The one exception family of the `edgetpu` package.

Every error raised on purpose by `edgetpu` is an :class:`EdgeTPUError`, so a
caller can catch them all at once; the subclasses say what went wrong. Messages
name the file, op or device concerned, what was expected and what was found.
Data beyond the message is given to the constructor as keyword fields (e.g.
:class:`CompilerError`'s ``returncode`` and ``stdout``), never attached later.

    >>> from edgetpu.errors import CompilerError, EdgeTPUError
    >>> e = CompilerError("edgetpu_compiler failed on m.tflite", kind="internal_error", returncode=1)
    >>> isinstance(e, EdgeTPUError), e.kind, e.returncode
    (True, 'internal_error', 1)
"""

from __future__ import annotations

__all__ = [
    "CompilerError",
    "CompilerNotFoundError",
    "DelegateError",
    "EdgeTPUError",
    "InputError",
    "InterpreterCrashError",
    "InvalidDeviceError",
    "InvalidModelError",
    "MalformedModelError",
    "NoEdgeTPUError",
    "OutputError",
    "VersionError",
]


def _rebuild(cls, args, kwargs, state):
    err = cls(*args, **kwargs)
    err.__dict__.update(state)
    return err


class EdgeTPUError(Exception):
    """Base class of every error raised by `edgetpu`.

    Errors pickle with their constructor fields (they cross process boundaries:
    ``edgetpu run`` invokes untrusted models in a child process).

        >>> import pickle
        >>> e = MalformedModelError("m.tflite", "op #1 CONV_2D", "a stride >= 1", "0")
        >>> e2 = pickle.loads(pickle.dumps(e))
        >>> type(e2).__name__, e2.where, str(e2) == str(e)
        ('MalformedModelError', 'op #1 CONV_2D', True)
    """

    def __new__(cls, *args, **kwargs):
        err = super().__new__(cls, *args)
        err._ctor = (args, kwargs)
        return err

    def __reduce__(self):
        args, kwargs = getattr(self, "_ctor", (self.args, {}))
        state = {k: v for k, v in self.__dict__.items() if k != "_ctor"}
        return (_rebuild, (type(self), args, kwargs, state))


class InvalidModelError(EdgeTPUError, ValueError):
    """A file or buffer is not a usable .tflite model (truncated, random bytes, other format, broken graph)."""


class InterpreterCrashError(InvalidModelError):
    """The TFLite interpreter crashed (a signal, e.g. SIGSEGV) on a model, in a child process that shielded the caller."""


class InputError(EdgeTPUError, ValueError):
    """An argument or input data is not what the function accepts (shape, dtype, a count out of range)."""


class OutputError(EdgeTPUError, OSError):
    """An output file cannot be written: the target is read-only, a folder, or its folder cannot be made."""


class CompilerNotFoundError(EdgeTPUError, FileNotFoundError):
    """`edgetpu_compiler` is not installed, or `EDGETPU_COMPILER` points nowhere."""


class CompilerError(EdgeTPUError, RuntimeError):
    """`edgetpu_compiler` ran and failed; the message carries the compiler's own words.

    Args:
        message: one line: the file, the compiler's own error lines and advice.
        kind: the failure form: ``"not_quantized"``, ``"op_version"``,
            ``"internal_error"``, ``"large_activations"``, ``"timeout"``,
            ``"interpreter_failed"``, ``"invalid_model"``,
            ``"compilation_failed"`` or ``"unknown"``.
        returncode: the compiler's exit status (None when it was killed).
        stdout: the compiler's whole stdout and stderr.
        compiler_message: the compiler's error lines, one per line.
        log: the text of the ``*_edgetpu.log`` it wrote, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "unknown",
        returncode: int | None = None,
        stdout: str = "",
        compiler_message: str = "",
        log: str | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.returncode = returncode
        self.stdout = stdout
        self.compiler_message = compiler_message
        self.log = log


class DelegateError(EdgeTPUError, RuntimeError):
    """The Edge TPU delegate library could not be loaded, or no device answered."""


class InvalidDeviceError(DelegateError, ValueError):
    """A device string is not one of the accepted forms (``":0"``, ``"usb"``, ``"usb:0"``, ``"pci"``, ``"pci:0"``)."""


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


class Terminated(BaseException):  # not in __all__: a signal, not one of the EdgeTPUError family
    """SIGTERM turned into an exception by the CLI, so that ``finally`` blocks remove temp files (exit 143).

    A ``BaseException``, like ``KeyboardInterrupt``: ``except Exception`` does not swallow it.
    """
