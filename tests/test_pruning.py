"""prune_low_magnitude, UpdatePruningStep, strip_pruning and sparsity_report in model.fit."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_compress.errors import PruningError
from keras_compress.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    PruneLowMagnitude,
    PruningSummaries,
    UpdatePruningStep,
    collect_wrappers,
    prune_low_magnitude,
    sparsity_report,
    strip_pruning,
)
from pruning_helpers import assert_sparsity, compile_for_classes, random_data, tiny_cnn

L = keras.layers

# (layer factory, input shape, input dtype, pruned attribute)
LAYER_CASES = {
    "Dense": (lambda: L.Dense(12), (10,), "float32", "kernel"),
    "Conv1D": (lambda: L.Conv1D(6, 3), (12, 4), "float32", "kernel"),
    "Conv2D": (lambda: L.Conv2D(6, 3), (7, 7, 4), "float32", "kernel"),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2), (7, 7, 4), "float32", "kernel"),
    "SeparableConv2D": (lambda: L.SeparableConv2D(8, 3), (7, 7, 4), "float32", "pointwise_kernel"),
    "Conv2DTranspose": (lambda: L.Conv2DTranspose(6, 3), (5, 5, 4), "float32", "kernel"),
    "Embedding": (lambda: L.Embedding(20, 6), (5,), "int32", "embeddings"),
}


def _one_layer_model(case):
    make, shape, dtype, attr = LAYER_CASES[case]
    inp = keras.Input(shape, dtype=dtype)
    h = make()(inp)
    h = L.Flatten()(h)
    out = L.Dense(2)(h)
    return keras.Model(inp, out), shape, dtype, attr


def _data_for(shape, dtype, n=48):
    rng = np.random.default_rng(0)
    if dtype == "int32":
        x = rng.integers(0, 20, (n,) + shape).astype("int32")
    else:
        x = rng.normal(size=(n,) + shape).astype("float32")
    return x, rng.normal(size=(n, 2)).astype("float32")


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_each_layer_type_is_pruned_in_fit_and_stripped(case):
    keras.utils.set_random_seed(0)
    model, shape, dtype, attr = _one_layer_model(case)
    x, y = _data_for(shape, dtype)
    pruned = prune_low_magnitude(model, ConstantSparsity(0.6, begin_step=0, frequency=2))
    wrapped = [l for l in pruned.layers if isinstance(l, PruneLowMagnitude)]
    assert [type(w.layer).__name__ for w in wrapped] == [case, "Dense"]
    pruned.compile("adam", "mse")
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[UpdatePruningStep()])
    kernel = keras.ops.convert_to_numpy(getattr(wrapped[0].layer, attr))
    assert_sparsity(kernel, 0.6, tol=0.02, what=f"{case}.{attr}")
    stripped = strip_pruning(pruned)
    assert not collect_wrappers(stripped)
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )
    assert_sparsity(keras.ops.convert_to_numpy(getattr(stripped.layers[1], attr)), 0.6, 0.02)
    if case == "SeparableConv2D":  # decided: the depthwise kernel stays dense
        assert np.count_nonzero(keras.ops.convert_to_numpy(stripped.layers[1].depthwise_kernel)) == (
            3 * 3 * 4
        )


def test_original_model_is_not_modified_and_other_layers_untouched():
    model = tiny_cnn()
    before = [w.copy() for w in model.get_weights()]
    pruned = prune_low_magnitude(model, ConstantSparsity(0.9, 0, frequency=1))
    types = {l.name: type(l).__name__ for l in pruned.layers}
    assert types["bn_a"] == "BatchNormalization" and types["flat"] == "Flatten"
    assert types["prune_low_magnitude_conv_a"] == "PruneLowMagnitude"
    x, y = random_data(32)
    compile_for_classes(pruned).fit(x, y, epochs=1, verbose=0, callbacks=[UpdatePruningStep()])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_single_layer_and_list_of_layers():
    layer = prune_low_magnitude(L.Dense(3))
    assert isinstance(layer, PruneLowMagnitude) and layer.name == f"prune_low_magnitude_{layer.layer.name}"
    layers = prune_low_magnitude([L.Conv2D(2, 3), L.Embedding(4, 2)])
    assert [type(l.layer).__name__ for l in layers] == ["Conv2D", "Embedding"]


@pytest.mark.parametrize("layer", [L.BatchNormalization(name="bn_x"), L.LSTM(3, name="lstm_x")])
def test_explicit_unprunable_layer_raises_naming_it(layer):
    with pytest.raises(PruningError, match=f"layer '{layer.name}' \\({type(layer).__name__}\\) cannot be pruned"):
        prune_low_magnitude(layer)
    with pytest.raises(PruningError, match=layer.name):
        prune_low_magnitude([L.Dense(2), layer])


def test_subclassed_model_is_refused_by_name():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="my_net")
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(PruningError, match="'my_net' .* subclassed"):
        prune_low_magnitude(net)


def test_bad_wrapper_arguments_name_the_value():
    with pytest.raises(PruningError, match="block_pooling_type must be 'AVG' or 'MAX', got 'MIN'"):
        prune_low_magnitude(L.Dense(2), block_pooling_type="MIN")
    with pytest.raises(PruningError, match=r"needs m < n, got \(4, 4\)"):
        prune_low_magnitude(L.Dense(2), sparsity_m_by_n=(4, 4))
    with pytest.raises(PruningError, match="depthwise"):
        prune_low_magnitude(L.DepthwiseConv2D(3), sparsity_m_by_n=(2, 4))


def test_training_without_the_callback_raises():
    pruned = compile_for_classes(prune_low_magnitude(tiny_cnn()))
    x, y = random_data(16)
    with pytest.raises(PruningError, match="UpdatePruningStep"):
        pruned.fit(x, y, epochs=1, verbose=0)


def test_nested_model_layers_are_pruned():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(8), L.ReLU(), L.Dense(8)], name="inner")
    inp = keras.Input((6,))
    out = L.Dense(2)(inner(inp))
    pruned = prune_low_magnitude(keras.Model(inp, out), ConstantSparsity(0.75, 0, frequency=1))
    assert len(collect_wrappers(pruned)) == 3
    assert len(collect_wrappers(pruned.get_layer("inner"))) == 2
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    pruned.compile("adam", "mse")
    pruned.fit(x, x[:, :2], epochs=1, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    rows = sparsity_report(strip_pruning(pruned), print_fn=None)
    inner_names = [l.name for l in inner.layers if isinstance(l, L.Dense)]
    assert [r["layer"] for r in rows][:2] == [f"inner/{n}" for n in inner_names]
    assert len(rows) == 3 and "/" not in rows[2]["layer"]
    for r in rows:
        assert abs(r["sparsity"] - 0.75) <= 0.02, r


def test_m_by_n_2_4_in_training():
    model = keras.Sequential([keras.Input((8,)), L.Dense(8), L.Dense(2)])
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1), sparsity_m_by_n=(2, 4))
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    pruned.compile("adam", "mse")
    pruned.fit(x, x[:, :2], epochs=2, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    kernel = strip_pruning(pruned).layers[0].get_weights()[0]  # (8 inputs, 8 units)
    groups = kernel.T.reshape(8, 2, 4)  # per unit, groups of 4 consecutive inputs
    assert np.all((groups == 0).sum(axis=-1) == 2)


def test_polynomial_schedule_reaches_final_sparsity_and_step_follows_tfmot():
    keras.utils.set_random_seed(0)
    x, y = random_data(64)
    pruned = compile_for_classes(
        prune_low_magnitude(tiny_cnn(), PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, frequency=2))
    )
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[UpdatePruningStep()])
    for w in collect_wrappers(pruned):
        assert int(w.pruning_step.numpy()) == 8  # last batch: iterations 7 -> step 8
        assert_sparsity(w.layer.get_weights()[0], 0.8, tol=0.01, what=w.name)
    rows = sparsity_report(pruned, print_fn=None)
    assert all(abs(r["sparsity"] - 0.8) <= 0.01 for r in rows)


def test_keras_checkpoint_resume_ends_at_same_sparsity(tmp_path):
    x, y = random_data(64)
    schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=24, frequency=4)

    def fresh():
        keras.utils.set_random_seed(1)
        return compile_for_classes(prune_low_magnitude(tiny_cnn(), schedule))

    full = fresh()
    full.fit(x, y, batch_size=16, epochs=5, verbose=0, shuffle=False, callbacks=[UpdatePruningStep()])

    part = fresh()
    part.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=[UpdatePruningStep()])
    path = str(tmp_path / "ckpt.keras")
    part.save(path)
    del part
    resumed = keras.saving.load_model(path)
    assert int(resumed.optimizer.iterations.numpy()) == 12
    assert [int(w.pruning_step.numpy()) for w in collect_wrappers(resumed)] == [12] * 4
    resumed.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[UpdatePruningStep()])

    full_rows = sparsity_report(full, print_fn=None)
    resumed_rows = sparsity_report(resumed, print_fn=None)
    assert [r["sparsity"] for r in resumed_rows] == [r["sparsity"] for r in full_rows]
    # 20 steps of PolynomialDecay(0 -> 0.9, end 24): masks last updated at step 20
    expected = 0.9 + (0.0 - 0.9) * (1 - 20 / 24) ** 3
    for r in full_rows:
        assert abs(r["sparsity"] - expected) <= 0.01, r
    for a, b in zip(full.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_pruning_summaries_write_per_layer_sparsity(tmp_path):
    x, y = random_data(32)
    pruned = compile_for_classes(prune_low_magnitude(tiny_cnn(), ConstantSparsity(0.5, 0, frequency=1)))
    pruned.fit(
        x, y, epochs=2, batch_size=16, verbose=0,
        callbacks=[UpdatePruningStep(), PruningSummaries(str(tmp_path))],
    )
    values = {}
    for path in glob.glob(os.path.join(str(tmp_path), "pruning", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                values[(v.tag, event.step)] = float(tf.make_ndarray(v.tensor))
    tags = {t for t, _ in values}
    for name in ("conv_a", "conv_b", "fc", "logits"):
        assert f"pruning/{name}/kernel/sparsity" in tags
    assert values[("pruning/conv_a/kernel/sparsity", 4)] == pytest.approx(0.5, abs=0.02)
    assert values[("pruning/sparsity", 4)] == pytest.approx(0.5, abs=0.01)


def test_sparsity_report_prints_a_table():
    model = keras.Sequential([keras.Input((4,)), L.Dense(5, name="fc5"), L.Dense(2, name="fc2")])
    w = model.layers[0].get_weights()
    w[0][:2] = 0.0
    model.layers[0].set_weights(w)
    lines = []
    rows = sparsity_report(model, print_fn=lines.append)
    assert rows[0] == {"layer": "fc5", "weight": "kernel", "weights": 20, "zeros": 10,
                       "sparsity": 0.5, "pruned": False}
    assert rows[1]["layer"] == "fc2" and rows[1]["weights"] == 10
    assert lines[0].split() == ["layer", "weights", "zeros", "sparsity"]
    assert lines[1].split()[-3:] == ["20", "10", "50.00%"]
    assert lines[-1].split()[0] == "total"
