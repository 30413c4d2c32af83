"""mixed_precision_plan: 4/8-bit weights per layer under a byte budget measured from the file."""

import numpy as np
import pytest

import keras

from keras_compress.convert import to_tflite
from keras_compress.convert.lowbit import weighted_ops
from keras_compress.errors import QuantizationError
from keras_compress.quantization.mixed import mixed_precision_plan


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((10, 10, 3)), keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
                          keras.layers.Conv2D(24, 3, activation="relu", name="c2"), keras.layers.Flatten(),
                          keras.layers.Dense(32, activation="relu", name="d0"), keras.layers.Dense(6, name="d")], name="mx")
    x = np.random.default_rng(0).random((48, 10, 10, 3), dtype=np.float32)
    all4 = len(to_tflite(m, quantization="int4_weights", int8_layers=(), verbose=False))
    all8 = len(to_tflite(m, quantization="int4_weights", int8_layers=["c1", "c2", "d0", "d"], verbose=False))
    return m, x, all4, all8


@pytest.mark.parametrize("frac", [0.3, 0.7])
def test_plan_meets_budget_and_beats_all4(setup, frac):
    m, x, all4, all8 = setup
    budget = int(all4 + frac * (all8 - all4))
    plan = mixed_precision_plan(m, x, budget_bytes=budget)
    assert plan.size_bytes == len(plan.tflite) <= budget
    assert plan.score >= plan.all4_score
    assert 8 in plan.bits.values() and 4 in plan.bits.values()
    # to_tflite with the plan's int8_layers writes the same bits
    blob = to_tflite(m, quantization="int4_weights", int8_layers=plan.int8_layers, verbose=False)
    assert len(blob) <= budget
    assert {w.layer: int(w.weight_dtype[3:]) for w in weighted_ops(blob, m)} == plan.bits


def test_budget_below_all4_refused(setup):
    m, x, all4, _ = setup
    with pytest.raises(QuantizationError, match="below the all-4-bit"):
        mixed_precision_plan(m, x, budget_bytes=all4 - 1)
