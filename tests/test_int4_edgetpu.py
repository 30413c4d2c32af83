"""edgetpu check on below-int8 models: int4 weights and int16 activations are named as not for the Edge TPU."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("ai_edge_quantizer")

import edgetpu  # noqa: E402
from keras_compress.convert import to_tflite  # noqa: E402


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
