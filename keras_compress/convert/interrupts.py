"""Ctrl-C during a TFLite conversion: hold it until the converter returns, then raise it.

A KeyboardInterrupt raised while TensorFlow's converter is in C++ surfaces in
whatever Python code runs next, often a destructor, where Python prints
"Exception ignored in: <function UniquePtr.__del__ ...> KeyboardInterrupt"
and drops it: the run then finishes with exit 0. :func:`deferred_sigint`
records SIGINT instead and raises KeyboardInterrupt once the block is left,
so Ctrl-C always reaches the caller (a CLI then exits 130).

Example:
    >>> import os, signal
    >>> from keras_compress.convert.interrupts import deferred_sigint
    >>> try:
    ...     with deferred_sigint():
    ...         os.kill(os.getpid(), signal.SIGINT)
    ...         print("block finished")
    ... except KeyboardInterrupt:
    ...     print("KeyboardInterrupt after the block")
    block finished
    KeyboardInterrupt after the block
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["deferred_sigint"]


@contextlib.contextmanager
def deferred_sigint() -> Iterator[None]:
    """Hold SIGINT for the duration of the block; raise KeyboardInterrupt after it if one came.

    Outside the main thread (where Python cannot install signal handlers) the
    block runs unchanged. A handler the caller installed is called after the
    block instead of raising, so its own policy holds.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:  # also when the block failed: Ctrl-C wins over the block's own error
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        if received:
            _deliver(previous, received[0])


def _deliver(previous, frame) -> None:
    if callable(previous) and previous is not signal.default_int_handler:
        previous(signal.SIGINT, frame)
    elif previous != signal.SIG_IGN:
        raise KeyboardInterrupt
