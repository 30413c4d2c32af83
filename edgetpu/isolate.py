"""Run a function in a forked child process, so a crash of native code cannot take the caller down.

The TFLite interpreter is C++: a malformed model can make it crash the whole
process (SIGSEGV) instead of raising, for example a graph in which one op's
output is never produced. :func:`call_in_child` runs ``fn`` in a child made
with ``fork()``: the result (or the Python exception) comes back through a
pipe, and a child killed by a signal becomes an
:class:`~edgetpu.errors.InterpreterCrashError` naming what crashed.

``edgetpu run`` and ``edgetpu bench`` use it by default (``--in-process``
turns it off): on an untrusted file, one error line beats a dead shell
command, and the cost is small -- one ``fork()`` and pickling the result
(median 9 ms, min 2.6 ms, measured on a 2-core machine at load 6 from a
process with only numpy, edgetpu and the interpreter package loaded; see
bench/bench_isolation.py), since the model is loaded once, in the child.
Forking a process that has TensorFlow loaded costs more (85-156 ms there:
its page tables are larger). The Python API
(:func:`edgetpu.make_interpreter`, :func:`edgetpu.run`) stays in process: a
library caller keeps its interpreter across calls (a child per call would
reload the model every time), and the model is validated before the
interpreter sees it. Only on Linux: elsewhere ``fork()`` is missing or unsafe
with system frameworks (macOS), and the function runs in process.

    >>> from edgetpu.isolate import call_in_child
    >>> call_in_child(sum, [1, 2, 3], what="adding")
    6
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from edgetpu.errors import EdgeTPUError, InterpreterCrashError

__all__ = ["call_in_child", "isolation_available"]

_CHILD_FAILED = 70  # exit status of a child that could not even report its result


def isolation_available() -> bool:
    """True where :func:`call_in_child` really uses a child process (Linux with ``fork``)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _child(fn: Callable[..., Any], args: tuple, kwargs: dict, w: int) -> None:
    """Body of the child: run, send ``(ok, value)`` pickled, never return into the caller's code."""
    code = 0
    faulthandler.disable()  # a crash is reported once, by the parent, in one line
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
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - nothing can be reported from here
                pass
        os._exit(code)


def _describe_signal(num: int) -> str:
    try:
        return f"{signal.Signals(num).name} (signal {num})"
    except ValueError:
        return f"signal {num}"


def call_in_child(
    fn: Callable[..., Any],
    *args: Any,
    what: str,
    where: str | None = None,
    timeout_s: float | None = None,
    hide_stderr: tuple[str, ...] = (),
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)`` run in a forked child; its return value, or its exception raised here.

    Args:
        fn: the function; its result and any exception it raises must pickle.
        what: what ``fn`` does, for the crash message (e.g. ``"running the model"``).
        where: the file concerned, for the crash message.
        timeout_s: stop the child after this many seconds (default: no limit).
        hide_stderr: drop the child's stderr lines that start with one of these
            (e.g. ``("INFO: ",)`` for the TFLite runtime's start-up chatter);
            the other lines are passed on to this process's ``sys.stderr``.

    Raises:
        InterpreterCrashError: the child died by a signal (SIGSEGV, SIGABRT, ...)
            or was stopped after ``timeout_s``.
        EdgeTPUError: the child exited without a result.
        Whatever ``fn`` raised (its type, when it pickles).
    """
    if not isolation_available():
        return fn(*args, **kwargs)
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
        stream.flush()
    r, w = os.pipe()
    er, ew = os.pipe() if hide_stderr else (-1, -1)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if ew >= 0:
            os.dup2(ew, 2)
            os.close(er)
            os.close(ew)
        _child(fn, args, kwargs, w)
    for fd in (w, ew):
        if fd >= 0:
            os.close(fd)
    try:
        data = _collect(r, er, timeout_s, hide_stderr)
        if data is None:  # the except clause below stops the child
            subject = f"{where}: " if where else ""
            raise InterpreterCrashError(f"{subject}{what} did not finish within {timeout_s:g} s and was stopped")
        _, status = os.waitpid(pid, 0)
    except BaseException:  # Ctrl-C or an error here: the child must not outlive the call
        _kill(pid)
        raise
    finally:
        for fd in (r, er):
            if fd >= 0:
                os.close(fd)
    return _outcome(data, status, what, where)


def _collect(r: int, er: int, timeout_s: float | None, hide: tuple[str, ...]) -> bytes | None:
    """Read the result pipe to EOF (forwarding the stderr pipe, if any); None when ``timeout_s`` passes first."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    chunks: list[bytes] = []
    pending = bytearray()
    open_fds = [fd for fd in (r, er) if fd >= 0]
    while open_fds:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return None
        ready = select.select(open_fds, [], [], left)[0]
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.remove(fd)
            elif fd == r:
                chunks.append(chunk)
            else:
                pending += chunk
                pending = _forward_lines(pending, hide, final=False)
    _forward_lines(pending, hide, final=True)
    return b"".join(chunks)


def _forward_lines(buf: bytearray, hide: tuple[str, ...], *, final: bool) -> bytearray:
    """Write the complete lines of ``buf`` (all of it if ``final``) to stderr, except hidden ones; keep the rest."""
    *lines, rest = bytes(buf).split(b"\n")
    if final and rest:
        lines, rest = [*lines, rest], b""
    for line in lines:
        text = line.decode("utf-8", "replace")
        if not text.startswith(hide):
            print(text, file=sys.stderr)
    return bytearray(rest)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # already reaped
        pass


def _outcome(data: bytes, status: int, what: str, where: str | None) -> Any:
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
