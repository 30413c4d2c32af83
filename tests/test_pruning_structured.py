"""prune_filters: physically smaller models that compute the same function."""

import keras
import numpy as np
import pytest

from keras_compress.errors import PruningError
from keras_compress.pruning import filter_importance, prune_filters

L = keras.layers


def _silence_half(model, producer, consumers):
    """Zeroes half of `producer`'s filters and the consumers' weights reading them.

    Removing those filters then changes nothing, whatever lies between (BN...).
    Returns the kept filter indices.
    """
    layer = model.get_layer(producer)
    w = layer.get_weights()
    k = 1 if isinstance(layer, L.SeparableConv2D) else 0  # index of the output kernel
    n = w[k].shape[-1]
    drop = np.arange(0, n, 2)
    w[k][..., drop] = 0.0
    if len(w) > k + 1:
        w[k + 1][drop] = 0.0
    layer.set_weights(w)
    for name, per_position in consumers:
        c = model.get_layer(name)
        cw = c.get_weights()
        if per_position:  # Dense after Flatten: rows are (position, channel) pairs
            rows = cw[0].shape[0]
            idx = np.arange(rows).reshape(-1, n)[:, drop].ravel()
            cw[0][idx] = 0.0
        else:
            cw[0][..., drop, :] = 0.0
        c.set_weights(cw)
    return np.setdiff1d(np.arange(n), drop)


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if isinstance(layer, L.BatchNormalization):
            ws = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in ws]
        else:
            ws = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in ws]
        layer.set_weights(ws)


def _functional_cnn():
    inp = keras.Input((9, 9, 3))
    h = L.Conv2D(8, 3, name="c1")(inp)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU()(h)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(h)
    h = L.SeparableConv2D(6, 3, padding="same", name="sep")(h)
    h = L.MaxPooling2D(name="pool")(h)
    h = L.Flatten(name="flat")(h)
    h = L.Dense(10, activation="relu", name="fc")(h)
    return keras.Model(inp, L.Dense(3, name="out")(h))


def _sequential_cnn():
    return keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            L.Conv2D(8, 3, name="c1"),
            L.BatchNormalization(name="bn"),
            L.ReLU(),
            L.Conv2D(6, 3, name="c2"),
            L.GlobalAveragePooling2D(),
            L.Dense(3, name="out"),
        ]
    )


@pytest.mark.parametrize(
    "build,producer,consumers,per_position",
    [
        (_functional_cnn, "fc", [("out", False)], False),
        (_sequential_cnn, "c1", [("c2", False)], False),
        (_functional_cnn, "sep", [("fc", True)], True),
    ],
)
def test_removed_filters_that_do_not_matter_leave_outputs_unchanged(build, producer, consumers, per_position):
    model = build()
    _randomize(model)
    kept = _silence_half(model, producer, consumers)
    small = prune_filters(model, 0.5, layers=[producer])
    assert small.get_layer(producer).get_weights()[-1].shape[-1] == len(kept)
    assert small.count_params() < model.count_params()
    x = np.random.default_rng(1).normal(size=(4, 9, 9, 3)).astype("float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_bn_and_depthwise_in_between_are_sliced():
    model = _functional_cnn()
    _randomize(model)
    small = prune_filters(model, 0.5, layers=["c1"])
    assert small.get_layer("c1").filters == 4
    assert small.get_layer("bn").get_weights()[0].shape == (4,)
    assert small.get_layer("dw").get_weights()[0].shape == (3, 3, 4, 2)
    assert small.get_layer("sep").get_weights()[0].shape == (3, 3, 8, 1)  # dw: 4 ch x mult 2
    keep = np.sort(np.argsort(-filter_importance(model.get_layer("c1")))[:4])
    np.testing.assert_array_equal(small.get_layer("bn").get_weights()[0], model.get_layer("bn").get_weights()[0][keep])


def test_default_prunes_every_eligible_layer_and_keeps_the_output():
    model = _functional_cnn()
    with pytest.warns(UserWarning, match="'out': its output is a model output"):
        small = prune_filters(model, 0.5)
    assert [small.get_layer(n).get_weights()[-1].shape[-1] for n in ("c1", "sep", "fc", "out")] == [4, 3, 5, 3]
    assert small.output.shape == model.output.shape


def _residual():
    inp = keras.Input((8, 8, 4))
    a = L.Conv2D(4, 3, padding="same", name="ca")(inp)
    b = L.Conv2D(4, 3, padding="same", name="cb")(a)
    s = L.Add(name="residual_add")([a, b])
    return keras.Model(inp, L.Dense(2, name="head")(L.Flatten()(s)))


def test_residual_add_is_refused_naming_the_merge():
    with pytest.raises(PruningError, match=r"'cb' reach 'residual_add' \(Add\)"):
        prune_filters(_residual(), 0.5, layers=["cb"])


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(fraction=1.0), "fraction must be a float in (0, 1), got 1.0"),
        (dict(fraction=0.5, layers=["nope"]), "has no layer 'nope'"),
        (dict(fraction=0.5, layers=["residual_add"]), "'residual_add' (Add) has no filters"),
        (dict(fraction=0.5, layers=["head"]), "'head': its output is a model output"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(kwargs, needle):
    with pytest.raises(PruningError) as info:
        prune_filters(_residual(), **kwargs)
    assert needle in str(info.value)


def _nested():
    """A conv outside, its channels flowing into a nested Functional (BN, ReLU, `x * 0.5`, conv) and a nested Sequential."""
    inner_in = keras.Input((7, 7, 6), name="inner_in")
    h = L.BatchNormalization(name="inner_bn")(inner_in)
    h = L.ReLU(name="inner_relu")(h) * 0.5  # a Keras operation, not a layer
    inner = keras.Model(inner_in, L.Conv2D(5, 3, name="inner_conv")(h), name="inner")
    head = keras.Sequential([keras.Input((5, 5, 5)), L.Conv2D(4, 1, name="head_conv"), L.Flatten(), L.Dense(3, name="out")], name="head")
    inp = keras.Input((9, 9, 3))
    x = L.Conv2D(6, 3, name="outer_conv")(inp)
    return keras.Model(inp, head(inner(x)), name="nested")


@pytest.mark.parametrize(
    "producer,consumers,per_position",
    [("outer_conv", [("inner_conv", False)], False), ("inner_conv", [("head_conv", False)], False), ("head_conv", [("out", True)], True)],
)
def test_channels_flow_through_nested_models_and_operations(producer, consumers, per_position):
    model = _nested()
    for m in (model, model.get_layer("inner"), model.get_layer("head")):
        _randomize(m)
    # the layers of nested models, reached by name through their owners
    owner = {"outer_conv": model, "inner_conv": model.get_layer("inner"), "head_conv": model.get_layer("head")}
    consumer_owner = {"inner_conv": model.get_layer("inner"), "head_conv": model.get_layer("head"), "out": model.get_layer("head")}
    kept = _silence_half(owner[producer], producer, [])
    for name, pp in consumers:
        _silence_half_inputs(consumer_owner[name].get_layer(name), owner[producer].get_layer(producer), pp)
    small = prune_filters(model, 0.5, layers=[producer])
    assert [l.name for l in small.layers if isinstance(l, keras.Model)] == ["inner", "head"]  # still nested
    found = owner[producer] is model and small.get_layer(producer) or small.get_layer(owner[producer].name).get_layer(producer)
    assert found.filters == len(kept)
    x = np.random.default_rng(1).normal(size=(4, 9, 9, 3)).astype("float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def _silence_half_inputs(consumer, producer, per_position):
    n = producer.get_weights()[0].shape[-1]
    drop = np.arange(0, n, 2)
    cw = consumer.get_weights()
    if per_position:
        cw[0][np.arange(cw[0].shape[0]).reshape(-1, n)[:, drop].ravel()] = 0.0
    else:
        cw[0][..., drop, :] = 0.0
    consumer.set_weights(cw)


def test_operation_on_two_tensors_is_refused_by_name():
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(4, 1, name="a")(inp)
    b = L.Conv2D(4, 1, name="b")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(a + b)))
    with pytest.raises(PruningError, match=r"the filters of 'a' reach 'add\w*' \(Add\), an operation on 2 tensors"):
        prune_filters(model, 0.5, layers=["a"])


def test_recurrent_layer_loses_input_rows():
    inp = keras.Input((8, 3))
    x = L.Conv1D(6, 3, padding="same", name="c")(inp)
    model = keras.Model(inp, L.Dense(2)(L.GRU(4, name="gru")(x)))
    _randomize(model)
    kept = _silence_half(model, "c", [])
    _silence_half_inputs(model.get_layer("gru"), model.get_layer("c"), False)
    small = prune_filters(model, 0.5, layers=["c"])
    assert small.get_layer("gru").get_weights()[0].shape[0] == len(kept)
    x = np.random.default_rng(1).normal(size=(4, 8, 3)).astype("float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
