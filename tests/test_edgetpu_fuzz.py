"""Seeded fuzz of `check` and of `make_interpreter` + `run` on mutated models (issue 11).

Mutants of two models (the hand-built MoveNet-style int8 model, whose ops cover
CAST, QUANTIZE, convolutions, resize, LOGISTIC, RESHAPE, ARG_MAX, GATHER_ND,
PACK, DIV, SQRT, DEQUANTIZE; and the converter's small int8 CNN): bit flips,
overwrites, truncations, splices, and graph edits (an operator duplicated as in
the issue, deleted or moved, rewired inputs, changed types, shapes, scales,
zero points, options, op codes, model inputs and outputs). Every mutant must
give a result or an `edgetpu` exception: never another exception type, never a
hang, and never a crash of the interpreter (a mutant whose inputs hold over 16M
elements, e.g. a 755 MB image, is built but not run: a 3x3 convolution over it
takes minutes, which says nothing about safety) (which runs in a subprocess, so a
segfault fails the test instead of killing pytest; each interpreter is freed
before the next model, and glibc's checking allocator runs where present, so
heap damage is caught and named after the model that did it). Found this way
and now refused by `edgetpu.validate` (tests/fakes/crashers.py): a CONV_2D
with its filter omitted, a STRIDED_SLICE missing inputs, zero points outside
their type's range, an ADD whose output scale the kernel cannot rescale to, an
LSTM missing one input of a group, a RESHAPE to a wrong constant shape, a
SPLIT carrying another op's options, an LSTM output of another type than its
input, a subnormal quantization scale.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from fakes.mutate import mutants
from fakes.tflite_builder import int8_lstm, movenet_style

import edgetpu
from edgetpu.errors import EdgeTPUError

SEED = 20261124
PER_MODEL = 250  # fast tier; the slow test below runs 500 per model on four models

CHILD = textwrap.dedent(
    """
    import gc, glob, sys
    import numpy as np
    import edgetpu
    from edgetpu.errors import EdgeTPUError
    for path in sorted(glob.glob(sys.argv[1] + "/*.tflite"))[int(sys.argv[2]):]:
        print("BEGIN", path, flush=True)
        interpreter = None
        try:
            interpreter = edgetpu.make_interpreter(path, num_threads=1)
            shapes = [(1, *d["shape"][1:]) for d in interpreter.get_input_details()]
            if sum(int(np.prod(s)) for s in shapes) > 2**24:  # a mutated size of 16M+ elements: built, not run
                print("BUILT", path, flush=True)
            else:
                xs = [np.zeros(s, np.float32) for s in shapes]
                edgetpu.run(interpreter, xs if len(xs) > 1 else xs[0])
                print("RAN", path, flush=True)
        except EdgeTPUError as e:
            print("REFUSED", path, type(e).__name__, flush=True)
        except Exception as e:
            print("STRAY", path, type(e).__name__, str(e)[:300].replace("\\n", " "), flush=True)
        del interpreter  # freed here, so heap damage done by this model shows now, named after it
        gc.collect()
    print("ALL DONE", flush=True)
    """
)

#: glibc's checking allocator, where present: heap damage aborts at the next free instead of passing unseen.
MALLOC_DEBUG = "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"


@contextlib.contextmanager
def _deadline(seconds: float, what: str):
    """Fail (not hang) when the block runs longer than ``seconds``."""

    def expire(*_):
        raise TimeoutError(f"{what} still running after {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _make_mutants(models, per_model, seed):
    out = []
    for name, (data, other) in models.items():
        out += [(f"{name}_{i:04d}_{kind}", m) for i, (kind, m) in enumerate(mutants(data, other, seed=seed, n=per_model))]
    return out


def _check_all(mutated):
    """Run check on every mutant; return the outcome counts, or fail naming the first bad mutant."""
    outcomes = {}
    for name, data in mutated:
        try:
            with _deadline(10, f"check of mutant {name}"):
                r = edgetpu.check(data)
            key = f"status {r.status}"
        except EdgeTPUError as e:
            key = type(e).__name__
        except Exception as e:  # noqa: BLE001 - the point of the test: no other exception type
            pytest.fail(f"check of mutant {name} raised {type(e).__name__}: {e}")
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


def _interpreter_all(mutated, tmp_path, timeout):
    """make_interpreter + run every mutant in a child process; fail on a crash, a hang or a stray exception."""
    for name, data in mutated:
        (tmp_path / f"{name}.tflite").write_bytes(data)
    env = dict(os.environ)
    if os.path.exists(MALLOC_DEBUG):
        env.update(LD_PRELOAD=MALLOC_DEBUG, MALLOC_CHECK_="3")
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "0"], capture_output=True, text=True,
                             timeout=timeout, check=False, env=env)
        stdout, code = out.stdout, out.returncode
    except subprocess.TimeoutExpired as e:
        stdout, code = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout (a hang)"
    lines = stdout.splitlines()
    strays = [line for line in lines if line.startswith("STRAY")]
    assert not strays, "\n".join(strays)
    if "ALL DONE" not in stdout:
        last = [line for line in lines if line.startswith("BEGIN")][-1:]
        pytest.fail(f"the interpreter process ended with {code} on {last}")
    kinds = [line.split()[0] for line in lines if line.split()[0] in ("RAN", "BUILT", "REFUSED")]
    assert len(kinds) == len(mutated)
    assert kinds.count("BUILT") <= len(mutated) // 100, kinds.count("BUILT")  # the exception, not the rule
    return kinds.count("RAN"), kinds.count("REFUSED")


@pytest.fixture(scope="module")
def fast_mutants(tflite_model):
    movenet, cnn = movenet_style()[0], tflite_model("tiny_int8").read_bytes()
    return _make_mutants({"movenet": (movenet, cnn), "cnn": (cnn, movenet)}, PER_MODEL, SEED)


def test_check_on_mutants_gives_a_result_or_an_edgetpu_error(fast_mutants):
    outcomes = _check_all(fast_mutants)
    assert sum(outcomes.values()) == 2 * PER_MODEL
    # The mutants exercise every path: readable and valid, refused as corrupt, refused as malformed.
    assert outcomes.get("InvalidModelError", 0) and outcomes.get("MalformedModelError", 0), outcomes
    assert sum(v for k, v in outcomes.items() if k.startswith("status")) > PER_MODEL // 4, outcomes


def test_interpreter_never_crashes_on_mutants(fast_mutants, tmp_path):
    ran, refused = _interpreter_all(fast_mutants, tmp_path, timeout=300)
    assert ran > PER_MODEL // 4 and refused > PER_MODEL // 4, (ran, refused)


@pytest.mark.slow
def test_fuzz_at_scale(tflite_model, tmp_path):
    """500 mutants of each of four models (also the int8 LSTM and a MobileNetV1-style CNN)."""
    movenet, cnn = movenet_style()[0], tflite_model("tiny_int8").read_bytes()
    lstm, mnv1 = int8_lstm(), tflite_model("mobilenet_v1_style").read_bytes()
    models = {"movenet": (movenet, cnn), "cnn": (cnn, movenet), "lstm": (lstm, cnn), "mnv1": (mnv1, lstm)}
    mutated = _make_mutants(models, 500, SEED + 1)
    _check_all(mutated)
    _interpreter_all(mutated, tmp_path, timeout=1800)
