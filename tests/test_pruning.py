"""prune_low_magnitude, UpdatePruningStep, strip_pruning and sparsity_report in model.fit."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from pruning_helpers import assert_sparsity, compile_for_classes, random_data, tiny_cnn

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

L = keras.layers

# (layer factory, input shape, input dtype, pruned attribute)
LAYER_CASES = {
    "Dense": (lambda: L.Dense(12), (10,), "float32", "kernel"),
    "Conv1D": (lambda: L.Conv1D(6, 3), (12, 4), "float32", "kernel"),
    "Conv2D": (lambda: L.Conv2D(6, 3), (7, 7, 4), "float32", "kernel"),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2), (7, 7, 4), "float32", "kernel"),
    "LSTM": (lambda: L.LSTM(6), (5, 4), "float32", "kernel"),
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
    pruned = prune_low_magnitude(
        model, ConstantSparsity(0.6, begin_step=0, frequency=2), prune_depthwise=True
    )
    wrapped = [l for l in pruned.layers if isinstance(l, PruneLowMagnitude)]
    assert [type(w.layer).__name__ for w in wrapped] == [case, "Dense"]
    pruned.compile("adam", "mse")
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[UpdatePruningStep()])
    kernel = keras.ops.convert_to_numpy(wrapped[0].get_prunable_weights()[0])
    assert_sparsity(kernel, 0.6, tol=0.02, what=f"{case}.{attr}")
    stripped = strip_pruning(pruned)
    assert not collect_wrappers(stripped)
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )
    inner = stripped.layers[1].cell if case == "LSTM" else stripped.layers[1]
    assert_sparsity(keras.ops.convert_to_numpy(getattr(inner, attr)), 0.6, 0.02)
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


class _DenseSubclass(L.Dense):
    pass


@pytest.mark.parametrize(
    "make,why",
    [
        (lambda: L.ConvLSTM2D(2, 3, name="x"), "pruning does not know this layer's weights"),
        (lambda: _DenseSubclass(3, name="x"), "it subclasses Dense"),
    ],
)
def test_unsupported_layer_raises_naming_it_alone_or_in_a_model(make, why):
    with pytest.raises(PruningError, match=f"layer 'x' \\({type(make()).__name__}\\) cannot be pruned: {why}"):
        prune_low_magnitude(make())
    with pytest.raises(PruningError, match="layer 'x'"):
        prune_low_magnitude([L.Dense(2), make()])
    with pytest.raises(PruningError, match="layer 'x'"):
        prune_low_magnitude(keras.Sequential([keras.Input((4, 4, 4, 2)), L.Dense(3), make()]))


def test_layer_with_nothing_to_prune_gets_an_empty_wrapper_when_explicit():
    wrapped = prune_low_magnitude(L.BatchNormalization(name="bn_x"))
    model = keras.Sequential([keras.Input((3,)), wrapped])
    assert model.built and wrapped.pruning_vars == [] and wrapped.get_prunable_weights() == []
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), wrapped.layer(x, training=False), rtol=1e-6)


def test_subclassed_model_is_refused_by_name():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="my_net")
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(PruningError, match="You passed an object of type: Net"):
        prune_low_magnitude(net)
    outer = keras.Sequential([keras.Input((3,)), net])
    with pytest.raises(PruningError, match="'my_net' of model .* is a subclassed model"):
        prune_low_magnitude(outer)


def test_bad_wrapper_arguments_name_the_value():
    with pytest.raises(PruningError, match="block_pooling_type must be 'AVG' or 'MAX', got 'MIN'"):
        prune_low_magnitude(L.Dense(2), block_pooling_type="MIN")
    with pytest.raises(PruningError, match=r"needs m < n, got \(4, 4\)"):
        prune_low_magnitude(L.Dense(2), sparsity_m_by_n=(4, 4))


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


# ---------------------------------------------------------------- tfmot parity items (issue 13)


def _depthwise_model():
    return keras.Sequential(
        [keras.Input((6, 6, 8)), L.DepthwiseConv2D(3, name="dw"), L.Conv2D(8, 1, name="pw"),
         L.Flatten(), L.Dense(4, name="fc")]
    )


def test_depthwise_kernels_are_left_dense_by_default_and_pruned_on_request():
    pruned = prune_low_magnitude(_depthwise_model(), ConstantSparsity(0.5, 0, frequency=1))
    assert [l.name for l in pruned.layers[:2]] == ["dw", "prune_low_magnitude_pw"]
    explicit = prune_low_magnitude(L.DepthwiseConv2D(3))
    explicit.build((None, 6, 6, 8))
    assert explicit.pruning_vars == []  # tfmot's registry: nothing to prune

    keras.utils.set_random_seed(0)
    opted = prune_low_magnitude(
        _depthwise_model(), ConstantSparsity(0.5, 0, frequency=1), prune_depthwise=True
    )
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 8)).astype("float32")
    opted.compile("sgd", "mse")
    opted.fit(x, np.zeros((16, 4)), epochs=1, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    dw = opted.get_layer("prune_low_magnitude_dw")
    assert_sparsity(keras.ops.convert_to_numpy(dw.layer.kernel), 0.5, tol=0.01, what="dw")
    restored = PruneLowMagnitude.from_config(dw.get_config())
    assert restored.prune_depthwise is True


def test_m_by_n_on_a_model_with_depthwise_layers_leaves_them_alone():
    keras.utils.set_random_seed(0)
    model = _depthwise_model()
    with pytest.warns(UserWarning, match="dw/kernel.* is left dense"):
        pruned = prune_low_magnitude(
            model, ConstantSparsity(0.5, 0, frequency=1), sparsity_m_by_n=(2, 4), prune_depthwise=True
        )
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 8)).astype("float32")
    pruned.compile("sgd", "mse")
    pruned.fit(x, np.zeros((16, 4)), epochs=1, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    stripped = strip_pruning(pruned)
    assert np.count_nonzero(stripped.get_layer("dw").get_weights()[0]) == 3 * 3 * 8
    pw = stripped.get_layer("pw").get_weights()[0].reshape(8, 8).T.reshape(8, 2, 4)
    assert np.all((pw == 0).sum(axis=-1) == 2)


class _Prunable(L.Dense):
    """A Dense subclass opting in through tfmot's interface, pruning its kernel only."""

    def get_prunable_weights(self):
        return [self.kernel]


def test_custom_layer_is_pruned_through_get_prunable_weights():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), _Prunable(6, name="custom"), L.Dense(2)])
    pruned = prune_low_magnitude(model, ConstantSparsity(0.75, 0, frequency=1))
    wrapper = pruned.get_layer("prune_low_magnitude_custom")
    assert [w.path.split("/")[-1] for w in wrapper.get_prunable_weights()] == ["kernel"]
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    pruned.compile("sgd", "mse")
    pruned.fit(x, x[:, :2], epochs=1, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    assert_sparsity(keras.ops.convert_to_numpy(wrapper.layer.kernel), 0.75, tol=0.01)


class _NoKwargs(L.Layer):
    """A custom layer tfmot users write: no **kwargs, so from_config cannot rebuild it."""

    def __init__(self, units):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))

    def call(self, x):
        return keras.ops.matmul(x, self.kernel)

    def get_prunable_weights(self):
        return [self.kernel]


def test_custom_layer_without_kwargs_is_wrapped_as_is_with_a_warning():
    model = keras.Sequential([keras.Input((4,)), _NoKwargs(6), L.Dense(2, name="out")])
    with pytest.warns(UserWarning, match=r"(?s)'_*no_kwargs' \(_NoKwargs\) cannot be rebuilt .*\*\*kwargs"):
        pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    assert pruned.layers[0].layer is model.layers[0]  # tfmot's behaviour: the same layer object
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    pruned.compile("sgd", "mse")
    pruned.fit(x, x[:, :2], epochs=1, verbose=0, callbacks=[UpdatePruningStep()])
    assert_sparsity(keras.ops.convert_to_numpy(model.layers[0].kernel), 0.5, tol=0.01)
    with pytest.warns(UserWarning, match="shares its layers"):
        stripped = strip_pruning(pruned)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-6)


def test_pruned_model_is_not_compiled_and_the_original_keeps_its_optimizer():
    model = compile_for_classes(tiny_cnn())
    pruned = prune_low_magnitude(model)
    assert not pruned.compiled and getattr(pruned, "optimizer", None) is None
    assert model.compiled and isinstance(model.optimizer, keras.optimizers.Adam)


def test_input_shape_of_a_wrapped_first_layer_builds_the_sequential_model():
    model = keras.Sequential([prune_low_magnitude(L.Dense(10, input_shape=(5,))), L.Dense(2)])
    assert model.built and tuple(model.inputs[0].shape) == (None, 5)
    assert model.layers[0].pruning_vars[0][0].shape == (5, 10)


def test_strip_pruning_of_a_model_never_built():
    stripped = strip_pruning(prune_low_magnitude(keras.Sequential([L.Dense(10), L.Dense(10)])))
    assert [type(l).__name__ for l in stripped.layers] == ["Dense", "Dense"]
    assert not stripped.built


def test_update_pruning_step_without_wrappers_warns_and_trains():
    model = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    model.compile("sgd", "mse")
    x = np.ones((4, 3), "float32")
    with pytest.warns(UserWarning, match="no PruneLowMagnitude layer"):
        model.fit(x, x[:, :2], verbose=0, callbacks=[UpdatePruningStep()])


@pytest.mark.parametrize("log_dir", ["", None, 3])
def test_pruning_summaries_needs_a_non_empty_log_dir(log_dir):
    with pytest.raises(ValueError, match="log_dir must be a non-empty string"):
        PruningSummaries(log_dir=log_dir)


def _scalars(log_dir):
    values = {}
    for path in glob.glob(os.path.join(str(log_dir), "pruning", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                values[(v.tag, event.step)] = float(tf.make_ndarray(v.tensor))
    return values


def test_custom_training_loop_as_tfmot_documents_reaches_target_and_logs(tmp_path):
    """tfmot's comprehensive guide, "Custom training loop", with our callbacks."""
    keras.utils.set_random_seed(0)
    model_for_pruning = prune_low_magnitude(
        tiny_cnn(), pruning_schedule=PolynomialDecay(0.0, 0.7, begin_step=0, end_step=4, frequency=1)
    )
    x_train, y_train = random_data(16)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam()
    log_dir = str(tmp_path)
    unused_arg = -1
    epochs = 2
    batches = 2

    model_for_pruning.optimizer = optimizer
    step_callback = UpdatePruningStep()
    step_callback.set_model(model_for_pruning)
    log_callback = PruningSummaries(log_dir=log_dir)
    log_callback.set_model(model_for_pruning)

    step_callback.on_train_begin()
    for _ in range(epochs):
        log_callback.on_epoch_begin(epoch=unused_arg)
        for b in range(batches):
            step_callback.on_train_batch_begin(batch=unused_arg)
            with tf.GradientTape() as tape:
                logits = model_for_pruning(x_train[b * 8 : (b + 1) * 8], training=True)
                loss_value = loss(y_train[b * 8 : (b + 1) * 8], logits)
                grads = tape.gradient(loss_value, model_for_pruning.trainable_variables)
                optimizer.apply_gradients(zip(grads, model_for_pruning.trainable_variables))
        step_callback.on_epoch_end(batch=unused_arg)

    for w in collect_wrappers(model_for_pruning):
        assert int(w.pruning_step.numpy()) == 4
        assert_sparsity(w.layer.get_weights()[0], 0.7, tol=0.01, what=w.name)
    values = _scalars(log_dir)
    assert values[("pruning/sparsity", 0)] == 0.0  # logged at the start of epoch 1
    assert values[("pruning/conv_a/kernel/sparsity", 2)] == pytest.approx(0.7 * (1 - (1 - 2 / 4) ** 3), abs=0.01)


def test_multi_head_attention_prunes_its_four_dense_kernels():
    keras.utils.set_random_seed(0)
    query, context = keras.Input((5, 8)), keras.Input((7, 6))
    h = L.MultiHeadAttention(2, 4, name="mha")(query, context)
    out = L.Dense(3, name="out")(L.GlobalAveragePooling1D()(h))
    pruned = prune_low_magnitude(keras.Model([query, context], out), ConstantSparsity(0.5, 0, frequency=1))
    rng = np.random.default_rng(0)
    xq, xc = rng.normal(size=(16, 5, 8)).astype("f4"), rng.normal(size=(16, 7, 6)).astype("f4")
    pruned.compile("adam", "mse")
    pruned.fit([xq, xc], rng.normal(size=(16, 3)), batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    mha = pruned.get_layer("prune_low_magnitude_mha")
    names = [w.path.split("/")[-2:] for w in mha.get_prunable_weights()]
    assert names == [["query", "kernel"], ["key", "kernel"], ["value", "kernel"], ["attention_output", "kernel"]]
    for w in mha.get_prunable_weights():
        assert_sparsity(keras.ops.convert_to_numpy(w), 0.5, tol=0.01, what=w.path)
    assert np.count_nonzero(keras.ops.convert_to_numpy(mha.layer.query_dense.bias)) > 0
    stripped = strip_pruning(pruned)
    np.testing.assert_allclose(
        stripped.predict([xq, xc], verbose=0), pruned.predict([xq, xc], verbose=0), rtol=1e-5, atol=1e-6
    )
