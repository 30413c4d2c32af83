"""to_tflite under hostile input: every failure is one clear error, nothing written, no temp file left.

Issue 11's cases: inf / NaN / absurd calibration data, batch_size 0 and -1,
outputs that are not ``.tflite`` files, read-only targets, Ctrl-C during
conversion (it must reach the caller), and a converter crash (GRU int8),
which must become a ConversionError instead of a dead process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from keras_compress.convert import to_tflite
from keras_compress.errors import CalibrationDataError, ConversionError

REPO = Path(__file__).resolve().parents[1]


def _left_behind(d: Path) -> list[str]:
    # TF's AutoGraph writes the source of functions it converts (here: while TF saves the traced function)
    # to __autograph_generated_file*.py and removes those files itself at interpreter exit (atexit).
    return sorted(p.name for p in d.iterdir() if not p.name.startswith("__autograph_generated_file"))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temp dir of this test's own for tempfile users (TF included); must be empty again afterwards."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    yield d
    assert _left_behind(d) == [], "temp files left behind"


@pytest.fixture(scope="module")
def dense():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)], name="dense")


def _calib(n=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 6)).astype(np.float32)


@pytest.mark.parametrize("bad, kinds", [(np.inf, "inf"), (-np.inf, "inf"), (np.nan, "NaN")])
def test_non_finite_calibration_data_names_the_sample(dense, tmp_path, private_tmp, bad, kinds):
    x = _calib()
    x[11, 2] = bad
    out = tmp_path / "m.tflite"
    with pytest.raises(CalibrationDataError) as e:
        to_tflite(dense, out, quantization="int8", representative_data=x, verbose=False)
    msg = str(e.value)
    assert "sample 11" in msg and kinds in msg, msg
    assert "give representative_data" not in msg
    assert not out.exists()


def test_non_finite_sample_index_counts_across_batches(dense, private_tmp):
    x = _calib(12)
    x[9, 0] = np.nan
    batches = (x[i : i + 4] for i in range(0, 12, 4))  # the NaN is row 1 of batch 2
    with pytest.raises(CalibrationDataError, match="sample 9 "):
        to_tflite(dense, quantization="int8", representative_data=batches, verbose=False)


def test_inf_in_the_unused_tail_is_not_an_error(dense, private_tmp):
    x = _calib(20)
    x[19] = np.inf  # beyond num_calibration_samples: never used
    assert to_tflite(dense, quantization="int8", representative_data=x, num_calibration_samples=8, verbose=False)[4:8] == b"TFL3"


def test_absurd_range_warns_with_the_range(dense, private_tmp):
    x = _calib() * 1e30
    with pytest.warns(UserWarning, match=r"ranges over \[-\d\.\d+e\+29, \d\.\d+e\+29\]"):
        to_tflite(dense, quantization="int8", representative_data=x, verbose=False)


def test_ordinary_range_does_not_warn(dense, private_tmp, recwarn):
    to_tflite(dense, quantization="int8", representative_data=_calib() * 255, verbose=False)
    assert not [w for w in recwarn if "ranges over" in str(w.message)]


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_bad_batch_size_is_a_conversion_error(dense, tmp_path, private_tmp, batch_size):
    out = tmp_path / "m.tflite"
    with pytest.raises(ConversionError, match=rf"batch_size: expected None \(dynamic batch\) or an integer >= 1; got {batch_size!r}"):
        to_tflite(dense, out, quantization="float32", batch_size=batch_size)
    assert not out.exists()


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "model", "model.tflite.bak"])
def test_path_must_end_in_tflite(dense, tmp_path, private_tmp, name):
    target = tmp_path / name
    target.write_bytes(b"user's file")
    with pytest.raises(ConversionError, match=r"must end in \.tflite"):
        to_tflite(dense, target, quantization="float32")
    assert target.read_bytes() == b"user's file"


def test_path_that_is_a_directory_or_under_a_file(dense, tmp_path, private_tmp):
    (tmp_path / "dir.tflite").mkdir()
    with pytest.raises(ConversionError, match="is a directory"):
        to_tflite(dense, tmp_path / "dir.tflite", quantization="float32")
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(ConversionError, match="is a file, not a directory"):
        to_tflite(dense, tmp_path / "afile" / "m.tflite", quantization="float32")


def test_read_only_target_is_refused(dense, tmp_path, private_tmp):
    target = tmp_path / "ro.tflite"
    target.write_bytes(b"old")
    target.chmod(0o444)
    with pytest.raises(ConversionError, match="read-only"):
        to_tflite(dense, target, quantization="float32")
    assert target.read_bytes() == b"old"


def test_successful_conversion_leaves_no_temp_files(dense, tmp_path, private_tmp):
    out = tmp_path / "ok.tflite"
    to_tflite(dense, out, quantization="int8", representative_data=_calib(), verbose=False)
    assert out.read_bytes()[4:8] == b"TFL3"


def _python(script: str, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp_path / "tmpdir")}
    (tmp_path / "tmpdir").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# Converts MobileNetV2 once to time it, then once per fraction f while the test sends SIGINT f * T seconds
# into the conversion. Before the fix a Ctrl-C landing while TF's converter ran in C++ was lost in 1 of 5
# runs here (the conversion completed, exit 0), as issue 11 saw in 2 of 4. Times come from CLOCK_MONOTONIC,
# which both processes share, so a signal that arrived after a conversion had already ended is told apart.
_REPEATED_CONVERSIONS = """
    import sys, time
    import keras
    from keras_compress.convert import to_tflite

    m = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(128, 128, 3))
    t = time.monotonic(); to_tflite(m, quantization="float32", verbose=False)
    print("duration", time.monotonic() - t, flush=True)
    for i in range({runs}):
        try:
            print("start", i, flush=True)
            to_tflite(m, quantization="float32", verbose=False)
            print("completed", i, time.monotonic(), flush=True)
        except KeyboardInterrupt:
            print("interrupted", i, time.monotonic(), flush=True)
        try:
            sys.stdin.readline()  # the test's go-ahead: its signal has been delivered
        except KeyboardInterrupt:
            pass
"""


@pytest.mark.slow
def test_ctrl_c_during_conversion_always_propagates(tmp_path):
    fractions = (0.2, 0.5, 0.8)
    proc = _python(_REPEATED_CONVERSIONS.format(runs=len(fractions)), tmp_path)
    duration, outcomes = None, []
    for line in proc.stdout:
        word, *rest = line.split()
        if word == "duration":
            duration = float(rest[0])
        elif word == "start":
            time.sleep(fractions[int(rest[0])] * duration)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
        elif word in ("completed", "interrupted"):
            outcomes.append((word, float(rest[1]), sent))
            time.sleep(0.5)
            proc.stdin.write("go\n")
            proc.stdin.flush()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0 and len(outcomes) == len(fractions), err[-2000:]
    in_time = [(word, ended, sent) for word, ended, sent in outcomes if sent < ended]
    assert in_time, f"no signal landed during a conversion: {outcomes}"
    assert all(word == "interrupted" for word, _, _ in in_time), outcomes
    assert "Exception ignored" not in err, err[-2000:]
    assert list((tmp_path / "tmpdir").iterdir()) == []  # a fresh process: AutoGraph's files are gone too


def _run_until(script: str, marker: str, tmp_path: Path):
    """Start ``script``; send SIGINT once it prints ``marker``; (returncode, stdout, stderr)."""
    proc = _python(script, tmp_path)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=600)
    return proc.returncode, "".join(lines) + out, err


_ISOLATED = """
    import logging, numpy as np, keras
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=__import__("sys").stdout)
    from keras_compress.convert import to_tflite
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    to_tflite(m, "out.tflite", quantization="int8", representative_data=np.random.rand(16, 6), verbose=False, isolate=True)
    print("finished normally", flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_during_an_isolated_conversion_stops_the_worker(tmp_path):
    rc, out, err = _run_until(_ISOLATED, "converting in a separate process", tmp_path)
    assert rc != 0 and "KeyboardInterrupt" in err, (out, err[-2000:])
    assert "finished normally" not in out
    assert not (tmp_path / "out.tflite").exists()
    assert list((tmp_path / "tmpdir").iterdir()) == []  # the worker's folder (its TMPDIR too) is gone


@pytest.mark.slow
def test_gru_int8_is_a_conversion_error_not_a_crash(tmp_path, private_tmp):
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((12, 5)), keras.layers.GRU(8, name="my_gru"), keras.layers.Dense(3)], name="gru_clf")
    out = tmp_path / "gru.tflite"
    with pytest.raises(ConversionError) as e:
        to_tflite(m, out, quantization="int8", representative_data=np.random.rand(8, 12, 5).astype("float32"), verbose=False)
    msg = str(e.value)
    assert "gru_clf" in msg and "'my_gru' (GRU)" in msg and "signal" in msg and "unroll=True" in msg, msg
    assert not out.exists()


@pytest.mark.slow
def test_unrolled_gru_is_full_int8_or_an_error_naming_the_split(private_tmp):
    """TF's converter is nondeterministic here: the same unrolled GRU leaves SPLIT in float in ~1 of 3 runs."""
    import keras

    from edgetpu.model import read_model

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((12, 5)), keras.layers.GRU(8, unroll=True, name="gru"), keras.layers.Dense(3)])
    try:
        blob = to_tflite(m, quantization="int8", representative_data=np.random.rand(16, 12, 5).astype("float32"), verbose=False)
    except ConversionError as e:
        assert "(SPLIT) from layer 'gru' (GRU) computes in float" in str(e), e
    else:
        assert {t.dtype for t in read_model(blob).main.tensors} <= {"int8", "int32"}


@pytest.mark.slow
def test_qat_gru_converts_to_full_int8_every_time(private_tmp):
    import keras

    from edgetpu.model import read_model
    from keras_compress.quantization import quantize_model

    keras.utils.set_random_seed(0)
    x = np.random.rand(16, 12, 5).astype("float32")
    for _ in range(2):  # the unrolled PTQ above fails in about 1 of 3 runs
        qat = quantize_model(keras.Sequential([keras.Input((12, 5)), keras.layers.GRU(8), keras.layers.Dense(3)]))
        blob = to_tflite(qat, quantization="int8", representative_data=x, verbose=False)
        assert {t.dtype for t in read_model(blob).main.tensors} <= {"int8", "int32"}


def test_isolation_refuses_layer_classes_defined_in_main(dense):
    import keras

    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    Scale.__module__ = "__main__"  # as in a user's script: another process cannot import it
    m = keras.Sequential([keras.Input((6,)), Scale(), keras.layers.Dense(2)], name="scripted")
    with pytest.raises(ConversionError, match=r"Scale is defined in __main__.*isolate=False"):
        to_tflite(m, quantization="int8", representative_data=_calib(), isolate=True, verbose=False)


@pytest.mark.slow
def test_isolated_converter_error_comes_back_as_the_same_error(tmp_path, private_tmp):
    import keras
    from convert_helpers import QRLayer

    m = keras.Sequential([keras.Input((16,)), QRLayer()], name="qr_model")
    out = tmp_path / "qr.tflite"
    with pytest.raises(ConversionError, match=r"qr_model.*tf\.Qr"):
        to_tflite(m, out, quantization="float32", isolate=True)
    assert not out.exists()
