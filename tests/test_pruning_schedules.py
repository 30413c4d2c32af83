"""Schedules and mask math: tfmot semantics, validation, serialization."""

import keras
import numpy as np
import pytest

from keras_compress.errors import PruningError
from keras_compress.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    m_by_n_mask,
    magnitude_mask,
    schedules,
)
from keras_compress.pruning.masks import block_mask


def tfmot_polynomial(step, initial, final, begin, end, power):
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return final + (initial - final) * (1 - p) ** power


@pytest.mark.parametrize("step", [0, 5, 10, 37, 100, 150, 1000])
def test_polynomial_decay_matches_tfmot_formula_python_and_tensor(step):
    s = PolynomialDecay(0.1, 0.8, begin_step=10, end_step=150, power=3, frequency=10)
    expected = tfmot_polynomial(step, 0.1, 0.8, 10, 150, 3)
    should, sparsity = s(step)
    assert sparsity == pytest.approx(expected)
    assert should == (10 <= step <= 150 and (step - 10) % 10 == 0)
    t_should, t_sparsity = s(keras.ops.convert_to_tensor(step, "int64"))
    assert float(t_sparsity) == pytest.approx(expected, rel=1e-6)
    assert bool(t_should) == should


@pytest.mark.parametrize(
    "step,expected", [(0, False), (99, False), (100, True), (200, True), (250, False)]
)
def test_constant_sparsity_prunes_every_frequency_forever(step, expected):
    s = ConstantSparsity(0.7, begin_step=100, frequency=100)
    assert s(step) == (expected, 0.7)
    assert bool(s(keras.ops.convert_to_tensor(step))[0]) == expected


def test_constant_sparsity_stops_after_end_step():
    s = ConstantSparsity(0.5, begin_step=0, end_step=200, frequency=100)
    assert [s(k)[0] for k in (0, 100, 200, 300)] == [True, True, True, False]


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: ConstantSparsity(1.0, 0), "target_sparsity must be in [0, 1), got 1.0"),
        (lambda: ConstantSparsity(-0.1, 0), "got -0.1"),
        (lambda: ConstantSparsity(0.5, -3), "begin_step must be >= 0, got -3"),
        (lambda: ConstantSparsity(0.5, 0, frequency=0), "frequency must be >= 1, got 0"),
        (lambda: ConstantSparsity(0.5, 10, end_step=5), "got 5"),
        (lambda: ConstantSparsity(0.5, 1.5), "begin_step must be an int, got 1.5"),
        (lambda: PolynomialDecay(0.0, 0.8, 0, -1), "got -1"),
        (lambda: PolynomialDecay(0.0, 1.2, 0, 10), "final_sparsity must be in [0, 1), got 1.2"),
        (lambda: PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power must be a number > 0, got 0"),
        (lambda: PolynomialDecay("a", 0.5, 0, 10), "initial_sparsity must be a float"),
    ],
)
def test_schedule_arguments_are_validated_with_the_bad_value(make, needle):
    with pytest.raises(PruningError) as info:
        make()
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "schedule",
    [ConstantSparsity(0.3, 5, 50, 5), PolynomialDecay(0.2, 0.9, 10, 110, power=2, frequency=7)],
)
def test_schedules_round_trip_through_config_and_keras_serialization(schedule):
    assert type(schedule).from_config(schedule.get_config()) == schedule
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored == schedule and restored(40) == schedule(40)
    # tfmot's nested layout is accepted too
    nested = {"class_name": type(schedule).__name__, "config": schedule.get_config()}
    assert schedules.get(nested) == schedule


def test_get_rejects_other_objects():
    with pytest.raises(PruningError, match="pruning_schedule must be"):
        schedules.get("constant")


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.8, 0.95])
def test_magnitude_mask_keeps_exactly_the_largest(sparsity):
    w = np.random.default_rng(1).normal(size=(16, 10)).astype("float32")
    mask, threshold = magnitude_mask(w, sparsity)
    mask = np.asarray(mask)
    keep = max(round(w.size * (1 - sparsity)), 1)
    assert int(mask.sum()) == keep
    assert np.abs(w[mask == 1]).min() >= np.abs(w[mask == 0]).max(initial=0)
    assert float(threshold) == pytest.approx(np.abs(w[mask == 1]).min())


def test_magnitude_mask_with_ties_at_zero_does_not_unprune():
    w = np.zeros((10, 10), "float32")
    w[0, :5] = 1.0
    mask = np.asarray(magnitude_mask(w, 0.5)[0])
    assert int(mask.sum()) == 50  # exactly k kept even though 95 weights tie at 0


@pytest.mark.parametrize("shape,axis", [((8, 6), 0), ((3, 3, 8, 5), -2), ((10, 7), -1)])
def test_m_by_n_mask_zeroes_two_of_every_four_along_axis(shape, axis):
    w = np.random.default_rng(2).normal(size=shape).astype("float32")
    mask = np.moveaxis(np.asarray(m_by_n_mask(w, (2, 4), axis=axis)), axis, -1)
    moved = np.moveaxis(np.abs(w), axis, -1)
    length = mask.shape[-1]
    for start in range(0, length, 4):
        group_mask = mask[..., start : start + 4].reshape(-1, min(4, length - start))
        group_w = moved[..., start : start + 4].reshape(group_mask.shape)
        zeros = (group_mask == 0).sum(axis=1)
        if group_mask.shape[1] == 4:
            assert np.all(zeros == 2)
        else:  # a shorter last group loses at most 2
            assert np.all(zeros <= 2)
        for gm, gw in zip(group_mask, group_w):
            if gm.size == 4:
                assert gw[gm == 1].min() >= gw[gm == 0].max()


def test_block_mask_prunes_whole_blocks():
    w = np.random.default_rng(3).normal(size=(8, 6)).astype("float32")
    mask = np.asarray(block_mask(w, 0.5, (2, 3))[0])
    blocks = mask.reshape(4, 2, 2, 3)
    assert np.all(blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3)))
    assert mask.mean() == pytest.approx(0.5)




def test_get_config_has_tfmots_layout_and_keras_deserializes_it():
    s = PolynomialDecay(0.2, 0.6, 10, 20, power=5, frequency=10)
    assert s.get_config() == {
        "class_name": "PolynomialDecay",
        "config": {"initial_sparsity": 0.2, "final_sparsity": 0.6, "power": 5,
                   "begin_step": 10, "end_step": 20, "frequency": 10},
    }
    restored = keras.saving.deserialize_keras_object(
        s.get_config(), custom_objects={"PolynomialDecay": PolynomialDecay}
    )
    assert isinstance(restored, PolynomialDecay) and restored == s
    # flat arguments (configs saved before the tfmot layout) still load
    assert PolynomialDecay.from_config(s.get_config()["config"]) == s


def test_custom_schedule_written_for_tfmot_works():
    class Step(schedules.PruningSchedule):
        def __init__(self, sparsity, begin_step=0, end_step=-1, frequency=1):
            self.target, self.begin_step, self.end_step, self.frequency = sparsity, begin_step, end_step, frequency

        def sparsity(self, step):
            return self.target if step >= 4 else 0.0

        def get_config(self):
            return {"class_name": "Step", "config": {"sparsity": self.target}}

    s = Step(0.5)
    assert s(4) == (True, 0.5) and s(2) == (True, 0.0)
    assert Step.from_config(s.get_config()) == s and "Step(sparsity=0.5)" == repr(s)
