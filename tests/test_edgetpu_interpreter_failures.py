"""A bad model never takes the caller down: interpreter failures become edgetpu errors, crashes stay in a child.

The models are hand-built (tests/fakes/broken_models.py); each reproduces one
failure that escaped as a traceback or killed the process (issue 11).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fakes.broken_models import BROKEN
from fakes.tflite_builder import conv_chain

import edgetpu
from edgetpu.errors import (
    InputError,
    InterpreterCrashError,
    InvalidModelError,
)
from edgetpu.isolate import call_in_child, isolation_available

needs_fork = pytest.mark.skipif(not isolation_available(), reason="child-process isolation needs fork() (Linux)")


@pytest.fixture
def broken(tmp_path):
    paths = {}
    for name, build in BROKEN.items():
        paths[name] = tmp_path / f"{name}.tflite"
        paths[name].write_bytes(build())
    return paths


def _foreign(path):
    """An interpreter made directly with the package, as a caller of run() might (no edgetpu validation)."""
    interp = edgetpu.interpreter_backend().Interpreter(model_content=path.read_bytes(), num_threads=1)
    interp.allocate_tensors()
    return interp


X = np.zeros((2, 8, 8, 4), np.int8)


@pytest.mark.parametrize(
    "name, words",
    [("bad_tensor_name", "a tensor name is not valid UTF-8"),
     ("unfed_input", r"Input tensor \d+ lacks data"),
     ("unproduced_output", "Tensor data is null")],
)
def test_run_turns_interpreter_failures_into_one_line_invalid_model_errors(broken, name, words):
    with pytest.raises(InvalidModelError) as e:
        edgetpu.run(_foreign(broken[name]), X)
    msg = str(e.value)
    assert re.search(words, msg) and "the TFLite interpreter failed while" in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["bad_tensor_name", "unfed_input", "unproduced_output"])
def test_make_interpreter_and_run_raise_only_invalid_model_errors_naming_the_file(broken, name):
    with pytest.raises(InvalidModelError) as e:
        edgetpu.run(edgetpu.make_interpreter(broken[name]), X)
    assert str(broken[name]) in str(e.value) and "\n" not in str(e.value)


def test_benchmark_turns_invoke_failures_into_invalid_model_errors(broken):
    with pytest.raises(InvalidModelError, match="lacks data"):
        edgetpu.benchmark(_foreign(broken["unfed_input"]), runs=2, warmup=0)
    with pytest.raises(InvalidModelError, match=str(broken["unfed_input"])):
        edgetpu.benchmark(broken["unfed_input"], runs=2, warmup=0)


@needs_fork
def test_a_model_that_crashes_the_interpreter_is_an_error_in_a_child_process(broken):
    p = broken["duplicate_op"]
    with pytest.raises(InvalidModelError) as e:  # the crash (or, once validated, the refusal) names the file
        call_in_child(lambda: edgetpu.run(edgetpu.make_interpreter(p), X), what="running the model", where=str(p))
    assert str(p) in str(e.value)


def _segfault():
    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a broken model does inside the interpreter


@needs_fork
def test_call_in_child_reports_a_crash_returns_results_and_reraises_errors():
    with pytest.raises(InterpreterCrashError, match=r"m\.tflite: the TFLite interpreter crashed with SIGSEGV \(signal 11\) "
                                                    r"while running the model"):
        call_in_child(_segfault, what="running the model", where="m.tflite")
    assert call_in_child(np.add, np.arange(3), 1, what="adding").tolist() == [1, 2, 3]
    with pytest.raises(InputError, match="runs must be >= 1"):
        call_in_child(edgetpu.benchmark, conv_chain(1).build(), runs=0, what="benchmarking")
    with pytest.raises(InterpreterCrashError, match="sleeping did not finish within 0.2 s"):
        call_in_child(time.sleep, 60, what="sleeping", timeout_s=0.2)


FUZZ = r"""
import json, sys
import numpy as np
import edgetpu
from edgetpu.errors import EdgeTPUError
from edgetpu.isolate import call_in_child
from fakes.tflite_builder import conv_chain


def make_and_run(data):
    interp = edgetpu.make_interpreter(data, num_threads=1)
    out = edgetpu.run(interp, [edgetpu.random_input(d) for d in interp.get_input_details()])
    return tuple(np.shape(o) for o in (out if isinstance(out, list) else [out]))


base = bytearray(conv_chain(2).build())
make_and_run(bytes(base))  # the first interpreter of a process costs ~0.1 s of set-up; the children inherit it
rng = np.random.default_rng(int(sys.argv[1]))
outcomes, stray = {"ok": 0}, []
for i in range(int(sys.argv[2])):
    m = bytearray(base)
    for pos in rng.integers(8, len(m), size=int(rng.integers(1, 4))):
        m[pos] = int(rng.integers(0, 256))
    try:
        call_in_child(make_and_run, bytes(m), what=f"mutant {i}", timeout_s=30, hide_stderr=("INFO: ",))
        outcomes["ok"] += 1
    except EdgeTPUError as e:
        outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1
    except Exception as e:
        stray.append(f"mutant {i}: {type(e).__name__}: {e}")
print("RESULT " + json.dumps({"outcomes": outcomes, "stray": stray}))
"""


@needs_fork
def test_seeded_mutants_raise_only_edgetpu_errors():
    """200 mutants of a small int8 model, each loaded and run in a child: only edgetpu's errors may come out.

    A crash (signal) in the child is an InterpreterCrashError: the caller survives it. The loop runs in a fresh
    process with only edgetpu loaded, where a fork costs milliseconds (from this TensorFlow-laden process, ~100 ms).
    """
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    r = subprocess.run([sys.executable, "-c", FUZZ, "0", "200"], check=False, capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.split("RESULT ", 1)[1])
    print("mutant outcomes:", got["outcomes"])
    assert got["stray"] == []
    assert sum(got["outcomes"].values()) == 200
    assert got["outcomes"].get("InvalidModelError", 0) > 0, got  # the mutants do reach the interpreter's failures
