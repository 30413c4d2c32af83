"""edgetpu picks ai_edge_litert, else tflite_runtime, else tensorflow.lite, and runs a model with each.

The fallback *order* is tested here in this environment, with a stand-in
``tflite_runtime`` package of the real one's shape (``tflite_runtime.interpreter``
exposing ``Interpreter`` and ``load_delegate``) that forwards to tensorflow.lite,
because the real wheel needs numpy<2. The proof that the real tflite-runtime
2.14.0 runs ``edgetpu`` is tests/test_tflite_runtime_214.py (its own venv).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgetpu import interpreter_backend
from edgetpu.errors import EdgeTPUError

RUN = """
import sys, numpy as np
{block}
import edgetpu
interp = edgetpu.make_interpreter({model!r}, num_threads=1)
out = edgetpu.run(interp, np.zeros((2, 32, 32, 1), np.float32))
assert out.shape == (2, 10)
assert edgetpu.interpreter_info(interp).backend == edgetpu.interpreter_backend().name
print("BACKEND", edgetpu.interpreter_backend().name)
"""


def _run(tmp_path, model, block="", env_extra=None):
    import os

    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env.get("PYTHONPATH", "")
    code = RUN.format(block=textwrap.dedent(block), model=str(model))
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split("BACKEND ")[1].strip()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, small_tflite):
    p = tmp_path_factory.mktemp("backend") / "m.tflite"
    p.write_bytes(small_tflite["int8"])
    return p


def test_default_is_ai_edge_litert(tmp_path, model_file):
    assert _run(tmp_path, model_file) == "ai_edge_litert"


@pytest.mark.slow  # two subprocesses import TensorFlow: 25-35 s on 2 busy cores
def test_falls_back_to_tflite_runtime_then_tensorflow(tmp_path, model_file):
    pkg = tmp_path / "tflite_runtime"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "interpreter.py").write_text(
        "import tensorflow as tf\nInterpreter = tf.lite.Interpreter\n"
        "load_delegate = tf.lite.experimental.load_delegate\nOpResolverType = tf.lite.experimental.OpResolverType\n"
    )
    no_litert = "sys.modules['ai_edge_litert'] = None  # as if not installed"
    assert _run(tmp_path, model_file, no_litert) == "tflite_runtime"
    neither = no_litert + "\nsys.modules['tflite_runtime'] = None"
    assert _run(tmp_path, model_file, neither) == "tensorflow"


@pytest.mark.slow  # a subprocess imports TensorFlow: ~25 s on 2 busy cores
def test_forced_choice(tmp_path, model_file):
    assert _run(tmp_path, model_file, env_extra={"EDGETPU_INTERPRETER": "tensorflow"}) == "tensorflow"


def test_bad_forced_choice_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("EDGETPU_INTERPRETER", "tflite")
    with pytest.raises(EdgeTPUError, match="EDGETPU_INTERPRETER: expected one of ai_edge_litert, tflite_runtime, "
                                           "tensorflow, got 'tflite'"):
        interpreter_backend()
    with pytest.raises(EdgeTPUError, match=r"interpreter_backend\(name\): expected one of"):
        interpreter_backend("tflite")


def test_a_later_change_of_the_variable_takes_effect(monkeypatch, model_file):
    """The variable is read on every call (it used to be read once inside a cache and then ignored)."""
    import edgetpu

    monkeypatch.delenv("EDGETPU_INTERPRETER", raising=False)
    assert interpreter_backend().name == "ai_edge_litert"
    monkeypatch.setenv("EDGETPU_INTERPRETER", "tensorflow")
    assert interpreter_backend().name == "tensorflow"
    assert edgetpu.interpreter_info(edgetpu.make_interpreter(model_file)).backend == "tensorflow"
    monkeypatch.setenv("EDGETPU_INTERPRETER", "tflite")
    with pytest.raises(EdgeTPUError, match="got 'tflite'"):
        edgetpu.make_interpreter(model_file)
    monkeypatch.setenv("EDGETPU_INTERPRETER", "ai_edge_litert")
    assert interpreter_backend() is interpreter_backend("ai_edge_litert")  # each package imported once, kept
    monkeypatch.delenv("EDGETPU_INTERPRETER")
    assert edgetpu.interpreter_info(edgetpu.make_interpreter(model_file)).backend == "ai_edge_litert"


def test_without_the_generated_schema_models_run_and_check_works(tmp_path, model_file):
    """A board with tflite_runtime alone has no generated .tflite schema module: run and check both work.

    (edgetpu reads the flatbuffer with its own reader and the tables in edgetpu/schema.py.)
    """
    block = """
    sys.modules['ai_edge_litert.schema_py_generated'] = None  # as if not installed
    sys.modules['tensorflow.lite.python.schema_py_generated'] = None
    r = __import__('edgetpu').check({model!r})
    assert r.ops and r.ops[0].op == 'CONV_2D', r.format_table()
    """.format(model=str(model_file))
    assert _run(tmp_path, model_file, block) == "ai_edge_litert"
