"""Progress lines: one helper for the pipeline, the demo and the benches.

Progress goes to stderr, one flushed line per event, so that stdout keeps only
results (the table). A :class:`Progress` can be silenced, and can be given a
``check`` that runs before every line: the CLI uses it to stop a run at the
next line after a Ctrl-C that a C++ destructor swallowed.

Example:
    >>> import io
    >>> from keras_compress.progress import Progress
    >>> buf = io.StringIO()
    >>> say = Progress(stream=buf)
    >>> say("[train] baseline, 3 epochs")
    >>> say.enabled = False
    >>> say("not shown")
    >>> buf.getvalue()
    '[train] baseline, 3 epochs\\n'
"""

from __future__ import annotations

import sys
from typing import Callable, TextIO

__all__ = ["Progress", "say"]


class Progress:
    """A callable that prints one progress line.

    Args:
        stream: where lines go (default: ``sys.stderr`` at call time).
        enabled: print at all.
        check: called before every line (even when disabled); may raise to
            stop the run (e.g. ``KeyboardInterrupt``).
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True, check: Callable[[], None] | None = None):
        self.stream = stream
        self.enabled = enabled
        self.check = check

    def __call__(self, message: str) -> None:
        if self.check is not None:
            self.check()
        if self.enabled:
            print(message, file=self.stream or sys.stderr, flush=True)


def say(message: str) -> None:
    """Print one progress line to stderr (the default :class:`Progress`)."""
    Progress()(message)
