"""mixed_precision_plan: 4/8-bit weights per layer under a byte budget measured from the file.

A tiny CNN trained on 8x8 digits (fixed seed): fit on 80% of the training
split, the plan chosen on the other 20%, judged on the test split it never saw.
"""

import numpy as np
import pytest

import keras

from keras_compress.convert import to_tflite
from keras_compress.convert.lowbit import weighted_ops
from keras_compress.datasets import load_digits
from keras_compress.errors import QuantizationError
from keras_compress.quantization.mixed import mixed_precision_plan, output_error

LAYERS = ["c1", "c2", "d0", "d"]


def _run(blob: bytes, x: np.ndarray) -> np.ndarray:
    import edgetpu

    return np.asarray(edgetpu.run(edgetpu.make_interpreter(blob), x))


@pytest.fixture(scope="module")
def setup():
    (x_train, y_train), (x_test, y_test) = load_digits(image_size=8)
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
                          keras.layers.Conv2D(16, 3, activation="relu", name="c2"), keras.layers.Flatten(),
                          keras.layers.Dense(32, activation="relu", name="d0"), keras.layers.Dense(10, name="d")], name="mx")
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    n = int(0.8 * len(x_train))
    m.fit(x_train[:n], y_train[:n], epochs=10, batch_size=32, verbose=0)
    all4 = to_tflite(m, quantization="int4_weights", int8_layers=(), verbose=False)
    all8 = len(to_tflite(m, quantization="int4_weights", int8_layers=LAYERS, verbose=False))
    ref = _run(to_tflite(m, quantization="float32", verbose=False), x_test)
    return m, (x_train[n:], y_train[n:]), (x_test, y_test, ref), all4, all8


@pytest.mark.parametrize("frac", [0.3, 0.9])
def test_plan_meets_budget_and_is_at_least_as_accurate_as_all4_on_unseen_data(setup, frac):
    m, held_out, (x_test, y_test, ref), all4, all8 = setup
    budget = int(len(all4) + frac * (all8 - len(all4)))
    plan = mixed_precision_plan(m, held_out, budget_bytes=budget)
    assert plan.size_bytes == len(plan.tflite) <= budget
    assert not plan.fell_back and 8 in plan.bits.values() and 4 in plan.bits.values()
    assert plan.error < plan.all4_error and plan.accuracy >= plan.all4_accuracy  # on the data it chose on
    plan_out, all4_out = _run(plan.tflite, x_test), _run(all4, x_test)
    assert np.mean(plan_out.argmax(-1) == y_test) >= np.mean(all4_out.argmax(-1) == y_test)
    assert output_error(ref, plan_out) < output_error(ref, all4_out)  # closer to float on the test set
    # to_tflite with the plan's int8_layers writes the same bits
    blob = to_tflite(m, quantization="int4_weights", int8_layers=plan.int8_layers, verbose=False)
    assert len(blob) <= budget
    assert {w.layer: int(w.weight_dtype[3:]) for w in weighted_ops(blob, m)} == plan.bits


def test_larger_budget_buys_a_lower_error(setup):
    m, held_out, _, all4, all8 = setup
    small, large = (mixed_precision_plan(m, held_out, budget_bytes=int(len(all4) + f * (all8 - len(all4))))
                    for f in (0.3, 0.9))
    assert large.error < small.error < small.all4_error
    assert set(large.gain) == set(LAYERS) and all(c > 0 for c in large.cost_bytes.values())


def test_safeguard_falls_back_to_all4_when_the_plan_loses_accuracy(setup):
    m, (x, _), _, all4, all8 = setup
    budget = int(len(all4) + 0.9 * (all8 - len(all4)))
    unlabelled = mixed_precision_plan(m, x, budget_bytes=budget)
    labels = _run(all4, x).argmax(-1)  # all-4-bit is right on every sample by construction
    assert not unlabelled.fell_back and np.any(_run(unlabelled.tflite, x).argmax(-1) != labels)
    plan = mixed_precision_plan(m, (x, labels), budget_bytes=budget)
    assert plan.fell_back and plan.bits == dict.fromkeys(LAYERS, 4) and plan.tflite == all4
    assert plan.accuracy == plan.all4_accuracy == 1.0


def test_output_error_is_kl_for_scores_and_noise_ratio_otherwise():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert output_error(logits, logits) == 0.0
    assert output_error(probs, logits) == pytest.approx(0.0, abs=1e-9)  # probabilities are taken as they are
    assert output_error(logits, logits + [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]) > 0
    assert output_error(np.array([[1.0], [2.0]]), np.array([[1.0], [1.0]])) == pytest.approx(1 / 5)


def test_budget_below_all4_refused(setup):
    m, held_out, _, all4, _ = setup
    with pytest.raises(QuantizationError, match="below the all-4-bit"):
        mixed_precision_plan(m, held_out, budget_bytes=len(all4) - 1)
