"""edgetpu: check, compile and run .tflite models on the Coral Edge TPU, or on
the CPU with XNNPACK where no TPU is present.

It plays the role of Google's pycoral (which is not on PyPI; the `pycoral` there
is an unrelated project) and needs only numpy and a TFLite interpreter package
(`ai_edge_litert`, else `tflite_runtime`, else `tensorflow.lite`): it never
imports TensorFlow or Keras itself, so it installs on a Raspberry Pi or a Coral
board.

    check(model, runtime=None)    Edge TPU compatibility, before compiling (and TF Lite runtime versions)
    validate(model)               is the model sound enough for the interpreter (raises if not)
    required_runtime(model)       oldest TF Lite runtime that has every op version of the model
    ops_newer_than(model, "2.14") ops whose version that runtime lacks
    compile(model, out_dir)       run Coral's edgetpu_compiler, parse its report
    make_interpreter(model)       Edge TPU delegate, or CPU with XNNPACK
    run(interpreter, x)           quantize, invoke over a batch, dequantize
    classify(interpreter, x)      top-k (id, score)
    benchmark(model)              latency statistics in ms
    list_edge_tpus()              attached Edge TPUs

Helpers for code that deploys models (keras_compress uses these):

    atomic_write_bytes(path, data)   write a file via temp + rename, umask-respecting
    load_model_bytes(model)          (bytes, path or None), the TFLite identifier checked
    interpreter_backend()            the interpreter package in use: .name, .Interpreter, ...
    interpreter_info(interpreter)    how make_interpreter built it: threads, XNNPACK, backend
    random_input(detail, rng)        random data for an input tensor (its dtype and shape)
    quantize(x, detail), dequantize(q, detail)

Names load on first use, so `import edgetpu` is cheap.
"""

from __future__ import annotations

import importlib

from edgetpu.errors import (
    CompilerError,
    CompilerNotFoundError,
    DelegateError,
    EdgeTPUError,
    InputError,
    InterpreterCrashError,
    InvalidDeviceError,
    InvalidModelError,
    MalformedModelError,
    NoEdgeTPUError,
    OutputError,
    VersionError,
)

__version__ = "0.1.0"

_LAZY = {
    "make_interpreter": "edgetpu.runtime",
    "run": "edgetpu.runtime",
    "classify": "edgetpu.runtime",
    "Class": "edgetpu.runtime",
    "load_model_bytes": "edgetpu.runtime",
    "interpreter_info": "edgetpu.runtime",
    "quantize": "edgetpu.runtime",
    "dequantize": "edgetpu.runtime",
    "benchmark": "edgetpu.bench",
    "random_input": "edgetpu.bench",
    "atomic_write_bytes": "edgetpu.files",
    "interpreter_backend": "edgetpu.backend",
    "check": "edgetpu.compat",
    "compile": "edgetpu.compiler",
    "list_edge_tpus": "edgetpu.delegate",
    "read_model": "edgetpu.model",
    "validate": "edgetpu.validation",
    "required_runtime": "edgetpu.runtime_versions",
    "ops_newer_than": "edgetpu.runtime_versions",
}

__all__ = [  # noqa: PLE0604 - *_LAZY unpacks the lazy names (the dict's string keys)
    *_LAZY,
    "EdgeTPUError",
    "InvalidModelError",
    "InterpreterCrashError",
    "InputError",
    "OutputError",
    "CompilerNotFoundError",
    "CompilerError",
    "DelegateError",
    "InvalidDeviceError",
    "NoEdgeTPUError",
    "MalformedModelError",
    "VersionError",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgetpu' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
