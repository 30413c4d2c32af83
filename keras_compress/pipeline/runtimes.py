"""Which interpreters run a .tflite: measured by loading and invoking it, never read off a table.

The ``measure`` stage always runs a model in this process's interpreter
(``edgetpu.interpreter_backend()``: ai_edge_litert here) and records it as
``runs_in``. Below-int8 models (int4 weights from AI Edge Quantizer) need
kernels that older runtimes lack, and AEQ writes version 1 for every op, so a
runtime's op-version table cannot tell; with ``KERAS_COMPRESS_TFLITE_RUNTIME_PYTHON``
set to the Python of an environment holding ``tflite_runtime`` (e.g. the 2.14
wheel many boards carry), :func:`other_runtime_column` invokes the file there
and the row gets ``tflite_runtime`` = ``"yes"`` or ``"no: <the runtime's
reason>"``.

Example:
    >>> from keras_compress.pipeline.runtimes import first_error_line
    >>> first_error_line("Traceback ...\\nRuntimeError: /t/dequantize.cc:58 x was not true.Node number 0 (DEQUANTIZE) failed to prepare.")
    'DEQUANTIZE failed to prepare (dequantize.cc:58)'
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

__all__ = ["RUNTIME_PYTHON_ENV", "first_error_line", "other_runtime_column", "runs_in"]

#: Environment variable naming the Python of a tflite_runtime environment.
RUNTIME_PYTHON_ENV = "KERAS_COMPRESS_TFLITE_RUNTIME_PYTHON"

_SCRIPT = r"""
import sys
import numpy as np
import tflite_runtime
from tflite_runtime.interpreter import Interpreter
print("tflite-runtime", tflite_runtime.__version__)
it = Interpreter(model_path=sys.argv[1])
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
it.invoke()
print("ok")
"""


def first_error_line(stderr: str) -> str:
    """The message of the last exception in a traceback, without its type."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    last = re.sub(r"^[\w.]+(Error|Exception): ", "", last)
    m = re.search(r"(\w+\.cc:\d+).*?Node number \d+ \((\w+)\) failed to prepare", last)
    return f"{m.group(2)} failed to prepare ({m.group(1)})" if m else last


def runs_in() -> str:
    """``"<package> <version>"`` of the interpreter this process runs models with."""
    from importlib.metadata import PackageNotFoundError, version

    import edgetpu

    name = edgetpu.interpreter_backend().name
    try:
        return f"{name} {version(name.replace('_', '-'))}"
    except PackageNotFoundError:
        return name


def other_runtime_column(tflite_path: Path, python: str | None = None) -> dict[str, str]:
    """``{"tflite_runtime": "yes" | "no: reason"}`` from invoking the file in another environment's tflite_runtime.

    ``python``: that environment's interpreter (default: ``$KERAS_COMPRESS_TFLITE_RUNTIME_PYTHON``);
    ``{}`` when none is set.
    """
    python = python or os.environ.get(RUNTIME_PYTHON_ENV)
    if not python:
        return {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "TF_"))}
    r = subprocess.run([python, "-c", _SCRIPT, str(tflite_path)], capture_output=True, text=True, timeout=300,
                       check=False, env=env)
    version = r.stdout.split("\n", 1)[0].replace("tflite-runtime ", "") or "?"
    ok = r.returncode == 0 and r.stdout.rstrip().endswith("ok")
    return {"tflite_runtime": f"{version}: yes" if ok else f"{version}: no ({first_error_line(r.stderr)[:90]})"}
