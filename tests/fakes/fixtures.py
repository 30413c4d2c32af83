"""Session fixtures shared by the edgetpu test files (import them into a test module).

Real conversions go through keras_compress.convert.to_tflite(target="edgetpu"),
the route the issue's "Done when" names; each costs seconds (MobileNetV2 224
~20 s on 2 cores), so every model is converted at most once per test run (the
pytest-xdist workers share one folder of them), and only when a test asks for it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FAKES = Path(__file__).resolve().parent


def _rep(model, n=4):
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(0).uniform(-1, 1, size=(n,) + shape).astype("float32")


_BUILDERS = {
    # name: (model builder, to_tflite kwargs)
    "mobilenet_v2_224": ("mobilenet_v2_224", {"target": "edgetpu"}),
    "mobilenet_v1_style": ("mobilenet_v1_style", {"target": "edgetpu"}),
    "resnet_style": ("resnet_style", {"target": "edgetpu"}),
    "mobilenet_v3_small": ("mobilenet_v3_small", {"target": "edgetpu"}),
    "leaky_relu": ("leaky_relu_model", {"target": "edgetpu"}),
    "tiny_int8": ("tiny_cnn", {"target": "edgetpu"}),
    "tiny_uint8": ("tiny_cnn", {"target": "edgetpu", "input_type": "uint8", "output_type": "uint8"}),
    "tiny_float_io": ("tiny_cnn", {"input_type": "float32", "output_type": "float32"}),
    "tiny_float": ("tiny_cnn", {"quantization": "float32"}),
    "tiny_dynamic_batch": ("tiny_cnn", {"batch_size": None}),
}


class _Models:
    def __init__(self, root: Path):
        self.root = root

    def __call__(self, name: str) -> Path:
        path = self.root / f"{name}.tflite"
        with open(self.root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be converting it: wait for its file
            if not path.exists():
                self._convert(name, path)
        return path

    @staticmethod
    def _convert(name: str, path: Path) -> None:
        import keras

        from fakes import tf_models
        from keras_compress.convert import to_tflite

        builder, kwargs = _BUILDERS[name]
        keras.utils.set_random_seed(0)
        model = getattr(tf_models, builder)()
        kw = dict(kwargs)
        if kw.get("quantization") != "float32":
            kw["representative_data"] = _rep(model)
        data = to_tflite(model, verbose=False, **kw)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


_SHARED = {}


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory):
    """``tflite_model("mobilenet_v2_224")`` -> Path of a converted model (built on first use).

    Importing a fixture into several test modules gives each module its own
    session instance, so the models themselves are kept in one folder per
    run, shared by the pytest-xdist workers (whose base temporary folders are
    children of the run's): each conversion runs once per test run.
    """
    if "models" not in _SHARED:
        base = tmp_path_factory.getbasetemp()
        root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "edgetpu_models"
        root.mkdir(exist_ok=True)
        _SHARED["models"] = _Models(root)
    return _SHARED["models"]


@pytest.fixture(scope="session")
def fake_compiler(tmp_path_factory) -> Path:
    """An executable that runs tests/fakes/edgetpu_compiler with this Python (so it can import edgetpu)."""
    d = tmp_path_factory.mktemp("fake_compiler_bin")
    exe = d / "edgetpu_compiler"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "edgetpu_compiler"}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


@pytest.fixture
def compiler_env(fake_compiler, monkeypatch, tmp_path) -> Path:
    """``EDGETPU_COMPILER`` set to the fake compiler; returns the file where it logs each argv it receives.

    The file exists only once the compiler ran: ``not compiler_env.exists()``
    proves that a failure was caught before compiling.
    """
    monkeypatch.setenv("EDGETPU_COMPILER", str(fake_compiler))
    monkeypatch.delenv("FAKE_EDGETPU_MODE", raising=False)
    argv_log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_EDGETPU_ARGV_LOG", str(argv_log))
    return argv_log


@pytest.fixture(scope="session")
def fake_libedgetpu(tmp_path_factory) -> Path:
    """A tiny C library with libedgetpu's device-listing C API (edgetpu_c.h), built with the system C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the fake libedgetpu"
    d = tmp_path_factory.mktemp("fake_libedgetpu")
    out = d / "libedgetpu.so.1"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(FAKES / "fake_libedgetpu.c")], check=True)
    return out


@pytest.fixture(scope="session")
def tflite_runtime_venv():
    """``run(script, *args) -> CompletedProcess`` in a cached venv with the real tflite-runtime 2.14.0 only.

    Skips, with the reason, where that wheel cannot be installed (another
    Python version, no package registry). See tests/tflite_runtime_venv.py.
    """
    from tflite_runtime_venv import (
        VenvUnavailable,
        ensure_venv,
        run_in_tflite_runtime_venv,
    )

    try:
        ensure_venv()
    except VenvUnavailable as e:
        pytest.skip(str(e))
    return run_in_tflite_runtime_venv
