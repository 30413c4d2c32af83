"""The `edgetpu` helpers `keras_compress` uses that are not public in `edgetpu` yet: the one place.

`keras_compress` uses only `edgetpu`'s public API. Two helpers it needs (an
atomic file writer and the TFLite interpreter package in use) are being made
public in `edgetpu` as ``edgetpu.atomic_write_bytes`` and
``edgetpu.interpreter_backend()``; until that change is in, this module falls
back to their private homes. Every other module of `keras_compress` imports
them from here, so dropping the fallbacks is a change of this file alone.

Example:
    >>> from keras_compress._edgetpu import atomic_write_bytes
    >>> callable(atomic_write_bytes)
    True
"""

from __future__ import annotations

from typing import Any

__all__ = ["atomic_write_bytes", "interpreter_backend"]

try:
    from edgetpu import atomic_write_bytes
except ImportError:  # edgetpu without the public helper yet
    from edgetpu._io import atomic_write_bytes  # noqa: F401 - fallback until edgetpu.atomic_write_bytes exists


def interpreter_backend() -> Any:
    """The TFLite interpreter package `edgetpu` runs models with (``.Interpreter``, ``.name``, ...)."""
    import edgetpu

    public = getattr(edgetpu, "interpreter_backend", None)
    if public is not None:
        return public()
    from edgetpu._interpreter import backend  # fallback until edgetpu.interpreter_backend exists

    return backend()
