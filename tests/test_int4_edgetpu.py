"""edgetpu check on below-int8 models: int4 weights and int16 activations are named as not for the Edge TPU."""

import numpy as np
import pytest

import keras

import edgetpu
from keras_compress.convert import to_tflite


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3, activation="relu", name="c"),
                             keras.layers.Flatten(), keras.layers.Dense(4, name="d")], name="m")


@pytest.mark.parametrize("mode, expect", [
    ("int4_weights", "4-bit weights"),
    ("int4_int8", "4-bit weights"),
    ("int16x8", "16-bit activations (int16x8) do not run on the Edge TPU"),
])
def test_check_names_below_int8(model, mode, expect):
    x = np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32)
    blob = to_tflite(model, quantization=mode, representative_data=x, int8_layers=() if "int4" in mode else None,
                     verbose=False)
    result = edgetpu.check(blob)
    assert result.cut_index is not None
    reasons = " ".join(op.reason or "" for op in result.ops)
    assert expect in reasons
    assert result.fraction_mapped < 1


def test_runtime_columns_measured_in_tflite_runtime_214(model, tflite_runtime_venv, tmp_path, monkeypatch):
    """What tflite-runtime 2.14 does with each mode, by loading and invoking the file there."""
    from tflite_runtime_venv import ensure_venv

    from keras_compress.pipeline.runtimes import other_runtime_column, runs_in

    x = np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32)
    got = {}
    for mode in ("int8", "int4_weights", "int4_int8"):
        p = tmp_path / f"{mode}.tflite"
        to_tflite(model, p, quantization=mode, representative_data=x, verbose=False,
                  int8_layers=() if "int4" in mode else None)
        got[mode] = other_runtime_column(p, str(ensure_venv()))["tflite_runtime"]
    assert got["int8"] == "2.14.0: yes"
    assert got["int4_weights"] == "2.14.0: no (DEQUANTIZE failed to prepare (dequantize.cc:58))"
    assert got["int4_int8"] == "2.14.0: no (FULLY_CONNECTED failed to prepare (fully_connected.cc:409))"
    monkeypatch.delenv("KERAS_COMPRESS_TFLITE_RUNTIME_PYTHON", raising=False)
    assert other_runtime_column(tmp_path / "int8.tflite") == {}  # no other runtime named: no column
    assert runs_in().startswith(edgetpu.interpreter_backend().name)
