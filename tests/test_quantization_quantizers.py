"""Fake-quant quantizers: the int8 arithmetic they simulate, their state and their configs."""

import keras
import numpy as np
import pytest

from keras_compress.errors import QuantizationError
from keras_compress.quantization import quantizers as Q


def _int8_symmetric(w, bound):
    """Reference: TFLite narrow-range symmetric int8, scale = bound / 127."""
    scale = bound / 127.0
    return np.clip(np.round(w / scale), -127, 127) * scale


@pytest.mark.parametrize("per_axis", [False, True])
def test_last_value_matches_tflite_symmetric_int8(per_axis):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 4, 5)).astype("float32")
    w[..., 2] *= 0.01  # a channel with a much smaller range
    q = Q.LastValueQuantizer(per_axis=per_axis, axis=-1)
    got = np.asarray(q(w, False, {}))
    bound = np.abs(w).max(axis=(0, 1, 2)) if per_axis else np.abs(w).max()
    want = _int8_symmetric(w, bound)
    np.testing.assert_allclose(got, want, atol=1e-6)
    levels = np.unique(np.round(got[..., 2] / (bound[2] if per_axis else bound) * 127))
    # per-channel keeps the small channel's resolution; per-tensor collapses it to a few levels
    assert (len(levels) > 20) == per_axis


def test_last_value_keeps_zeros_and_survives_all_zero_channel():
    w = np.zeros((1, 1, 2, 3), "float32")
    w[..., 0] = [[0.5, 0.0]]
    got = np.asarray(Q.LastValueQuantizer(per_axis=True)(w, True, {}))
    assert np.all(np.isfinite(got))
    assert np.array_equal(got == 0, w == 0)


def test_moving_average_first_batch_then_ema():
    layer = keras.layers.Layer()
    q = Q.MovingAverageQuantizer(ema_decay=0.5)
    v = q.build((None, 4), "out", layer)
    assert (float(v["min"].numpy()), float(v["max"].numpy())) == (-6.0, 6.0)
    q(np.array([[-1.0, 0.0, 2.0, 1.0]], "float32"), True, v)
    assert (float(v["min"].numpy()), float(v["max"].numpy())) == (-1.0, 2.0)  # first batch sets it
    q(np.array([[0.0, 0.5, 4.0, 1.0]], "float32"), True, v)
    assert float(v["max"].numpy()) == pytest.approx(3.0)  # 0.5 * 2 + 0.5 * 4
    assert float(v["min"].numpy()) == pytest.approx(-0.5)  # 0.5 * -1 + 0.5 * 0
    before = (float(v["min"].numpy()), float(v["max"].numpy()))
    y = np.asarray(q(np.array([[10.0, -10.0]], "float32"), False, v))  # inference: no update, clipped
    assert (float(v["min"].numpy()), float(v["max"].numpy())) == before
    assert y[0, 0] == pytest.approx(3.0, abs=0.02) and y[0, 1] == pytest.approx(-0.5, abs=0.02)


def test_moving_average_range_always_contains_zero():
    layer = keras.layers.Layer()
    q = Q.MovingAverageQuantizer()
    v = q.build((None, 3), "out", layer)
    y = np.asarray(q(np.array([[1.0, 3.0, 4.0]], "float32"), True, v))
    # range [0, 4]: 0 representable, values on a 4/255 grid
    np.testing.assert_allclose(y, np.round(np.array([[1.0, 3.0, 4.0]]) / (4 / 255)) * (4 / 255), atol=1e-5)


@pytest.mark.parametrize("name,scale,zero_point", [("softmax", 1 / 256, -128), ("sigmoid", 1 / 256, -128), ("tanh", 1 / 128, 0)])
def test_fixed_range_matches_tflite_output_params(name, scale, zero_point):
    q = Q.FixedRangeQuantizer.for_activation(name)
    # the range [min, max] spans 255 steps of `scale` with 0 at int8 `zero_point`
    assert (q.max_value - q.min_value) / 255 == pytest.approx(scale)
    assert -128 - q.min_value / scale == pytest.approx(zero_point)


@pytest.mark.parametrize(
    "quantizer",
    [Q.LastValueQuantizer(per_axis=True, axis=-2), Q.MovingAverageQuantizer(ema_decay=0.9), Q.FixedRangeQuantizer(-1.0, 1.0)],
)
def test_quantizer_config_round_trip(quantizer):
    again = Q.get(keras.saving.serialize_keras_object(quantizer))
    assert again == quantizer and again is not quantizer


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Q.get("nope"), "unknown quantizer 'nope'"),
        (lambda: Q.MovingAverageQuantizer(ema_decay=1.5), "ema_decay must be in"),
        (lambda: Q.LastValueQuantizer(num_bits=1), "num_bits must be an int"),
        (lambda: Q.FixedRangeQuantizer(0.5, 1.0), "min_value <= 0 <= max_value"),
        (lambda: Q.get(3), "expected a Quantizer"),
    ],
)
def test_bad_arguments_name_the_value(make, match):
    with pytest.raises(QuantizationError, match=match):
        make()
