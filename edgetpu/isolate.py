"""Run a function in a forked child process, so a crash of native code cannot take the caller down.

The TFLite interpreter is C++: a malformed model can make it crash the whole
process (SIGSEGV) instead of raising, for example a graph in which one op's
output is never produced. :func:`call_in_child` runs ``fn`` in a child made
with ``fork()``: the result (or the Python exception) comes back through a
pipe, and a child killed by a signal becomes an
:class:`~edgetpu.errors.InterpreterCrashError` naming what crashed.

``edgetpu run`` and ``edgetpu bench`` use it by default (``--in-process``
turns it off). The cost is one ``fork()`` and pickling the result (about a
millisecond here; the model is loaded once, in the child, not twice).
The Python API (:func:`edgetpu.make_interpreter`, :func:`edgetpu.run`) stays in
process: a library caller keeps its interpreter across calls, and the model
is validated before the interpreter sees it. Only on Linux: elsewhere
``fork()`` is unavailable or unsafe with system frameworks (macOS), and the
function runs in process.

    >>> from edgetpu.isolate import call_in_child
    >>> call_in_child(sum, [1, 2, 3], what="adding")
    6
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from typing import Any, Callable, Optional

from edgetpu.errors import EdgeTPUError, InterpreterCrashError

__all__ = ["call_in_child", "isolation_available"]

_CHILD_FAILED = 70  # exit status of a child that could not even report its result


def isolation_available() -> bool:
    """True where :func:`call_in_child` really uses a child process (Linux with ``fork``)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _child(fn: Callable[..., Any], args: tuple, kwargs: dict, w: int) -> None:
    """Body of the child: run, send ``(ok, value)`` pickled, never return into the caller's code."""
    code = 0
    try:
        try:
            payload = (True, fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - every outcome goes back to the parent
            payload = (False, e)
        try:
            data = pickle.dumps(payload)
        except Exception as e:  # noqa: BLE001 - an unpicklable result or exception
            data = pickle.dumps((False, EdgeTPUError(f"{type(payload[1]).__name__}: {payload[1]} ({e})")))
        with os.fdopen(w, "wb") as f:
            f.write(data)
    except BaseException:  # noqa: BLE001 - e.g. the parent went away (EPIPE)
        code = _CHILD_FAILED
    finally:
        os._exit(code)


def _describe_signal(num: int) -> str:
    try:
        return f"{signal.Signals(num).name} (signal {num})"
    except ValueError:
        return f"signal {num}"


def call_in_child(fn: Callable[..., Any], *args: Any, what: str, where: Optional[str] = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` run in a forked child; its return value, or its exception raised here.

    Args:
        fn: the function; its result and any exception it raises must pickle.
        what: what ``fn`` does, for the crash message (e.g. ``"running the model"``).
        where: the file concerned, for the crash message.

    Raises:
        InterpreterCrashError: the child died by a signal (SIGSEGV, SIGABRT, ...).
        EdgeTPUError: the child exited without a result.
        Whatever ``fn`` raised (its type, when it pickles).
    """
    if not isolation_available():
        return fn(*args, **kwargs)
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
        stream.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(fn, args, kwargs, w)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:  # Ctrl-C or an error here: the child must not outlive the call
        _kill(pid)
        raise
    return _outcome(data, status, what, where)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _outcome(data: bytes, status: int, what: str, where: Optional[str]) -> Any:
    subject = f"{where}: " if where else ""
    if os.WIFSIGNALED(status):
        sig = _describe_signal(os.WTERMSIG(status))
        raise InterpreterCrashError(
            f"{subject}the TFLite interpreter crashed with {sig} while {what} (in a child process, so nothing else "
            "was affected): the model is malformed or uses something this interpreter mishandles"
        )
    if not data:
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
        raise EdgeTPUError(f"{subject}the child process {what} exited with status {code} and no result")
    try:
        ok, value = pickle.loads(data)
    except Exception as e:  # noqa: BLE001 - e.g. an exception class whose constructor needs more arguments
        raise EdgeTPUError(f"{subject}the result of {what} could not be read back from the child ({e})") from None
    if ok:
        return value
    raise value
