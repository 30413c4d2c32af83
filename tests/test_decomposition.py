"""decompose / plan_decomposition / decomposition_report: factorized models compute what the math says."""

from __future__ import annotations

import doctest
import importlib
import re
import warnings

import keras
import numpy as np
import pytest

from keras_compress.decomposition import (
    KernelSVD,
    decompose,
    decomposition_report,
    layer_macs,
    model_macs,
    plan_decomposition,
)
from keras_compress.errors import DecompositionError

L = keras.layers


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _set_low_rank(layer, method, rank, rng):
    """Give ``layer`` a random kernel of exactly ``rank`` in ``method``'s matricization, and a bias."""
    kernel = rng.normal(size=tuple(layer.kernel.shape)).astype("float32")
    weights = [KernelSVD(kernel, method).reconstruct(rank)]
    if layer.use_bias:
        weights.append(rng.normal(size=(layer.kernel.shape[-1],)).astype("float32"))
    layer.set_weights(weights)


def _randomize_bn(bn, rng):
    n = bn.gamma.shape[0]
    bn.set_weights([rng.uniform(0.3, 3.0, n), rng.normal(size=n), rng.normal(size=n) * 0.1,
                    rng.uniform(0.2, 4.0, n)])


def _new_layers(model):
    out = []
    for layer in model.layers:
        out += _new_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return out


# ---- the SVD itself -------------------------------------------------------------------------


@pytest.mark.parametrize("method,shape", [("svd", (12, 7)), ("channel", (3, 3, 4, 6)), ("channel", (5, 4, 6)),
                                          ("spatial", (3, 5, 4, 6))])
def test_full_rank_factors_reconstruct_the_kernel(method, shape, rng):
    kernel = rng.normal(size=shape)
    svd = KernelSVD(kernel, method)
    a, b = svd.factors(svd.full_rank)
    assert a.shape[-1] == svd.full_rank and b.shape[-2] == svd.full_rank
    np.testing.assert_allclose(svd.reconstruct(svd.full_rank), kernel, atol=1e-9)


@pytest.mark.parametrize("method,shape", [("svd", (20, 9)), ("channel", (3, 3, 4, 8)), ("spatial", (3, 3, 4, 8))])
def test_energy_is_the_share_of_the_kernel_kept(method, shape, rng):
    """Eckart-Young: the rank-r truncation misses exactly the energy it drops."""
    kernel = rng.normal(size=shape)
    svd = KernelSVD(kernel, method)
    for r in (1, 2, svd.full_rank // 2):
        err = np.linalg.norm(svd.reconstruct(r) - kernel) ** 2 / np.linalg.norm(kernel) ** 2
        assert svd.energy(r) == pytest.approx(1.0 - err, abs=1e-9)
    energies = [svd.energy(r) for r in range(1, svd.full_rank + 1)]
    assert np.all(np.diff(energies) > 0) and energies[-1] == pytest.approx(1.0)
    for target in (0.3, 0.8, 0.95):
        r = svd.rank_for_energy(target)
        assert svd.energy(r) >= target and (r == 1 or svd.energy(r - 1) < target)


# ---- MAC counts ---------------------------------------------------------------------------


def test_layer_macs_match_hand_counts():
    inp = keras.Input((10, 12, 3))
    h = L.Conv2D(8, 3, strides=2, padding="same", name="conv")(inp)                # out 5 x 6
    h = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(h)      # 5 x 6 x 16
    h = L.SeparableConv2D(4, 3, name="sep")(h)                                      # out 3 x 4
    h = L.Conv2DTranspose(2, 2, strides=2, name="up")(h)                            # in 3 x 4
    h = L.Dense(5, name="dense")(h)                                                 # 6 x 8 positions
    m = keras.Model(inp, h)
    expected = {"conv": 5 * 6 * 9 * 3 * 8, "dw": 5 * 6 * 9 * 8 * 2, "sep": 3 * 4 * (9 * 16 + 16 * 4),
                "up": 3 * 4 * 4 * 4 * 2, "dense": 6 * 8 * 2 * 5}
    assert {n: layer_macs(m.get_layer(n)) for n in expected} == expected
    assert model_macs(m) == sum(expected.values())


@pytest.mark.parametrize("method", ["channel", "spatial"])
@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "same"), (2, "valid"), ((2, 1), "valid")])
def test_planned_macs_and_params_are_those_of_the_built_factors(method, strides, padding):
    m = keras.Sequential([keras.Input((13, 11, 6)), L.Conv2D(10, (3, 5), strides=strides, padding=padding,
                                                             name="c")])
    plan = plan_decomposition(m, rank=3, method=method)[0]
    d = decompose(m, rank=3, method=method)
    a, b = d.get_layer("c_a"), d.get_layer("c_b")
    assert plan.method == method and plan.rank == 3
    assert plan.macs_before == layer_macs(m.get_layer("c"))
    assert plan.macs_after == layer_macs(a) + layer_macs(b)
    assert plan.params_after == a.count_params() + b.count_params()


# ---- decompose: exactness ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["channel", "spatial"])
@pytest.mark.parametrize("strides,padding,dilation", [
    (1, "same", 1), (2, "same", 1), (2, "valid", 1), ((3, 2), "same", 1), (1, "same", 2), (1, "valid", (2, 3))])
@pytest.mark.parametrize("then_bn", [False, True])
def test_conv2d_factorization_is_exact_at_the_kernels_rank(method, strides, padding, dilation, then_bn, rng):
    inp = keras.Input((11, 13, 5))
    h = L.Conv2D(12, (3, 5), strides=strides, padding=padding, dilation_rate=dilation, name="c",
                 activation=None if then_bn else "relu")(inp)
    if then_bn:
        h = L.BatchNormalization(name="bn")(h)
        h = L.ReLU()(h)
    m = keras.Model(inp, h)
    _set_low_rank(m.get_layer("c"), method, 2, rng)
    if then_bn:
        _randomize_bn(m.get_layer("bn"), rng)
    d = decompose(m, rank=2, method=method)
    x = rng.random((3, 11, 13, 5)).astype("float32")
    np.testing.assert_allclose(d(x), m(x), atol=2e-5 * float(np.abs(m(x)).max()) + 1e-6)
    a, b = d.get_layer("c_a"), d.get_layer("c_b")
    assert a.use_bias is False and a.activation is keras.activations.linear
    assert b.activation is m.get_layer("c").activation and b.use_bias


@pytest.mark.parametrize("build", [
    lambda: keras.Sequential([keras.Input((7, 6)), L.Conv1D(8, 3, padding="causal", name="c")]),
    lambda: keras.Sequential([keras.Input((5, 6, 4, 3)), L.Conv3D(8, 3, padding="same", name="c")]),
    lambda: keras.Sequential([keras.Input((5, 9)), L.Dense(8, activation="tanh", name="c")]),
], ids=["conv1d_causal", "conv3d", "dense_on_sequence"])
def test_other_layers_factorize_exactly(build, rng):
    m = build()
    layer = m.get_layer("c")
    _set_low_rank(layer, "svd" if isinstance(layer, L.Dense) else "channel", 2, rng)
    d = decompose(m, rank=2, method="channel")
    assert [l.name for l in d.layers] == ["c_a", "c_b"]
    x = rng.random((2, *m.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(d(x), m(x), atol=1e-4)


@pytest.mark.parametrize("method", ["channel", "spatial"])
def test_channels_first_factors_keep_the_layout(method):
    """TensorFlow has no channels_first conv on the CPU: the factors' shapes and MACs are checked instead."""
    m = keras.Sequential([keras.Input((3, 9, 8)),
                          L.Conv2D(8, 3, strides=2, padding="same", data_format="channels_first", name="c")])
    plan = plan_decomposition(m, rank=2, method=method)[0]
    d = decompose(m, rank=2, method=method)
    a, b = d.get_layer("c_a"), d.get_layer("c_b")
    assert a.data_format == b.data_format == "channels_first"
    assert d.output_shape == m.output_shape == (None, 8, 5, 4)
    assert plan.macs_after == layer_macs(a) + layer_macs(b)


# ---- decompose: models, names, independence ---------------------------------------------------------


def _nested_model():
    inner_in = keras.Input((12, 12, 3), name="inner_in")
    t = L.Conv2D(16, 3, padding="same", use_bias=False, name="c1")(inner_in)
    t = L.BatchNormalization(name="bn1")(t)
    backbone = keras.Model(inner_in, L.ReLU(name="relu1")(t), name="backbone")
    block = keras.Sequential([keras.Input((12, 12, 16)), L.Conv2D(24, 3, strides=2, activation="relu", name="c2")],
                             name="block")
    inp = keras.Input((12, 12, 3), name="image")
    h = block(backbone(inp))
    h = L.GlobalAveragePooling2D(name="gap")(h)
    h = L.Dense(32, activation="relu", name="fc1")(h)
    return keras.Model(inp, L.Dense(5, name="logits")(h), name="nested")


def test_nested_functional_and_sequential_models_keep_structure_names_and_types(rng):
    keras.utils.set_random_seed(0)
    m = _nested_model()
    d = decompose(m, ratio=0.5, layers=["backbone/c1", "c2", "fc1"])
    assert [l.name for l in d.layers] == ["image", "backbone", "block", "gap", "fc1_a", "fc1_b", "logits"]
    assert [l.name for l in d.get_layer("backbone").layers] == ["inner_in", "c1_a", "c1_b", "bn1", "relu1"]
    assert isinstance(d.get_layer("block"), keras.Sequential)
    assert [l.name for l in d.get_layer("block").layers] == ["c2_a", "c2_b"]
    for layer in _new_layers(d):
        assert type(layer).__module__.startswith("keras."), type(layer)
    assert model_macs(d) <= 0.5 * model_macs(m)
    x = rng.random((4, 12, 12, 3)).astype("float32")
    assert d(x).shape == m(x).shape


def test_unselected_layers_keep_their_weights_and_nothing_is_shared(rng):
    keras.utils.set_random_seed(0)
    m = _nested_model()
    before = [w.copy() for w in m.get_weights()]
    d = decompose(m, rank=4, layers=["fc1"])
    np.testing.assert_array_equal(d.get_layer("logits").get_weights()[0], m.get_layer("logits").get_weights()[0])
    np.testing.assert_array_equal(d.get_layer("backbone").get_layer("bn1").get_weights()[3],
                                  m.get_layer("backbone").get_layer("bn1").get_weights()[3])
    d.compile("sgd", "mse")
    d.fit(rng.random((8, 12, 12, 3)).astype("float32"), rng.random((8, 5)).astype("float32"), verbose=0)
    for w0, w1 in zip(before, m.get_weights()):
        np.testing.assert_array_equal(w0, w1)  # training the decomposed model never touches the original
    assert not {id(v) for v in m.weights} & {id(v) for v in d.weights}


def test_sequential_stays_sequential_and_saves(tmp_path, rng):
    m = keras.Sequential([keras.Input((10, 10, 3)), L.Conv2D(16, 3, name="conv"), L.Flatten(), L.Dense(4)],
                         name="seq")
    d = decompose(m, rank=3, layers="conv")
    assert isinstance(d, keras.Sequential) and d.name == "seq"
    path = tmp_path / "d.keras"
    d.save(path)
    x = rng.random((2, 10, 10, 3)).astype("float32")
    np.testing.assert_allclose(keras.models.load_model(path)(x), d(x), atol=1e-6)


# ---- rank, energy, ratio, method ------------------------------------------------------------------


def test_rank_energy_and_ratio_pick_the_documented_rank(rng):
    m = keras.Sequential([keras.Input((16, 16, 8)), L.Conv2D(32, 3, padding="same", name="c")])
    svd = KernelSVD(m.get_layer("c").kernel.numpy(), "channel")
    before = layer_macs(m.get_layer("c"))
    p = plan_decomposition(m, ratio=0.3, method="channel")[0]
    assert p.macs_after <= 0.3 * before < p.macs_after + 16 * 16 * (72 + 32)  # one more rank would not fit
    p = plan_decomposition(m, energy=0.8, method="channel")[0]
    assert p.rank == svd.rank_for_energy(0.8) and p.energy >= 0.8
    assert plan_decomposition(m, rank=5, method="channel")[0].rank == 5


def test_auto_picks_the_factorization_the_kernel_has(rng):
    def conv_model():
        return keras.Sequential([keras.Input((16, 16, 8)), L.Conv2D(16, 3, padding="same", name="c")])

    spatial, channel = conv_model(), conv_model()
    _set_low_rank(spatial.get_layer("c"), "spatial", 2, rng)
    _set_low_rank(channel.get_layer("c"), "channel", 2, rng)
    assert plan_decomposition(spatial, energy=0.999)[0].method == "spatial"
    assert plan_decomposition(channel, energy=0.999)[0].method == "channel"
    # same MAC budget: auto keeps the one that loses less
    assert plan_decomposition(spatial, ratio=0.3)[0].method == "spatial"
    assert plan_decomposition(channel, ratio=0.3)[0].method == "channel"
    # fixed rank: fewer MACs wins (spatial at rank r costs 16*16*r*(24+48) vs channel 16*16*r*(72+16))
    assert plan_decomposition(channel, rank=2)[0].method == "spatial"


def test_layers_without_a_saving_are_left_alone_and_listed():
    # first: 3x3, 1 -> 4 channels. channel rank 3 costs 3 * (9 + 4) = 39 MACs per position > 36;
    # spatial: its (3 x 12) matrix has full rank 3. logits: 64 -> 3 has full rank 3.
    m = keras.Sequential([keras.Input((12, 12, 1)), L.Conv2D(4, 3, name="first"), L.Flatten(),
                          L.Dense(64, name="fc"), L.Dense(3, name="logits")])
    with pytest.warns(UserWarning, match=r"'logits' \(svd: rank 3 is not below the full rank 3\)"):
        d = decompose(m, rank=3)
    plans = {p.path: p for p in _quiet(plan_decomposition, m, rank=3)}
    assert plans["first"].reason == ("channel: rank 3 needs 3900 MACs, not fewer than the layer's 3600; "
                                     "spatial: rank 3 is not below the full rank 3")
    assert plans["fc"].decomposed and not plans["logits"].decomposed
    assert (plans["first"].macs_after, plans["first"].energy) == (3600, 1.0)
    assert [l.name for l in d.layers] == ["first", m.layers[1].name, "fc_a", "fc_b", "logits"]


def test_per_layer_settings_dict_first_match_wins():
    m = keras.Sequential([keras.Input((12, 12, 8)), L.Conv2D(16, 3, name="conv1"), L.Conv2D(16, 3, name="conv2"),
                          L.Flatten(), L.Dense(32, name="fc1"), L.Dense(4, name="fc2")])
    plans = {p.path: p for p in plan_decomposition(
        m, ratio=0.5, layers={"conv1": 3, "conv.*": {"energy": 0.9, "method": "channel"}, "fc1": None, "fc.*": {}})}
    assert set(plans) == {"conv1", "conv2", "fc2"}
    assert plans["conv1"].rank == 3
    assert plans["conv2"].method == "channel" and plans["conv2"].energy >= 0.9
    assert plans["fc2"].rank == plan_decomposition(m, ratio=0.5, layers="fc2")[0].rank


@pytest.mark.parametrize("kwargs,match", [
    ({}, "give one of rank, energy, ratio"),
    ({"rank": 0}, r"rank: expected int in \(0, inf\); got 0"),
    ({"rank": 2.5}, "rank: expected int"),
    ({"energy": 1.5}, r"energy: expected float in \(0.0, 1.0\]; got 1.5"),
    ({"ratio": 1.0}, r"ratio: expected float in \(0.0, 1.0\); got 1.0"),
    ({"rank": 2, "ratio": 0.5}, "exactly one of rank, energy, ratio; got rank, ratio"),
    ({"rank": 2, "method": "tucker"}, "method: expected one of 'auto', 'channel', 'spatial'; got 'tucker'"),
    ({"rank": 2, "layers": ["nope"]}, r"layers: \['nope'\] match no layer of model 'm'"),
    ({"rank": 2, "layers": ["("]}, "not a valid regular expression"),
    ({"layers": {"c": {"rank": 2, "bogus": 1}}}, r"layers\['c'\]: unknown keys \['bogus'\]"),
])
def test_bad_settings_are_refused_with_what_was_found(kwargs, match):
    m = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(8, 3, name="c")], name="m")
    with pytest.raises(DecompositionError, match=match):
        decompose(m, **kwargs)


class _MyDense(L.Dense):
    pass


@pytest.mark.parametrize("layer,match", [
    (L.Conv2D(8, 3, groups=2, name="x"), r"grouped convolution \(groups=2\)"),
    (L.DepthwiseConv2D(3, name="x"), "one filter per channel"),
    (L.SeparableConv2D(8, 3, name="x"), "cannot be factorized"),
    (L.Conv2D(8, 3, kernel_constraint="max_norm", name="x"), "kernel_constraint"),
    (_MyDense(8, name="x"), "subclass"),
])
def test_layers_named_exactly_that_cannot_be_factorized_raise_with_the_reason(layer, match):
    m = keras.Sequential([keras.Input((8, 8, 4)), layer, L.Flatten(), L.Dense(3, name="out")])
    with pytest.raises(DecompositionError, match=f"layer 'x': cannot be factorized: .*{match}"):
        decompose(m, rank=2, layers=["x"])
    plans = {p.path: p for p in _quiet(plan_decomposition, m, rank=2, layers=[".*"])}  # reaches no Flatten
    assert set(plans) == {"x", "out"} and plans["x"].reason and re.search(match, plans["x"].reason)


def test_shared_layer_is_left_alone_with_the_reason(rng):
    inp = keras.Input((8,))
    shared = L.Dense(8, name="shared")
    m = keras.Model(inp, L.Add()([shared(inp), shared(L.ReLU()(inp))]))
    plan = plan_decomposition(m, rank=2)[0]
    assert not plan.decomposed and plan.reason == "the layer is shared (called at 2 places in its model)"
    with pytest.raises(DecompositionError, match="layer 'shared': cannot be factorized: the layer is shared"):
        decompose(m, rank=2, layers="shared")


def test_name_collision_is_refused():
    m = keras.Sequential([keras.Input((8,)), L.Dense(8, name="fc"), L.Dense(8, name="fc_b")])
    with pytest.raises(DecompositionError, match="'fc_b', which model"):
        decompose(m, rank=2, layers=["fc"])


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = L.Dense(8)

        def call(self, x):
            return self.fc(x)

    net = Net()
    net(np.zeros((1, 16), "float32"))
    with pytest.raises(DecompositionError, match="cannot be rebuilt: only Sequential and Functional"):
        decompose(net, rank=2)


# ---- the report ------------------------------------------------------------------------------


def test_report_lists_every_layer_and_tracks_fine_tuning(rng):
    keras.utils.set_random_seed(0)
    m = _nested_model()
    d = _quiet(decompose, m, energy=0.6, layers=["backbone/c1", "fc1", "logits"])
    plans = {p.path: p for p in _quiet(plan_decomposition, m, energy=0.6, layers=["backbone/c1", "fc1", "logits"])}
    lines = []
    rows = {r["layer"]: r for r in decomposition_report(m, d, print_fn=lines.append)}
    assert set(rows) == {"backbone/c1", "block/c2", "fc1", "logits"}
    for name in ("backbone/c1", "fc1"):
        r, p = rows[name], plans[name]
        assert r["status"] == "decomposed"
        assert (r["method"], r["rank"], r["macs_after"], r["params_after"]) == (
            p.method, p.rank, p.macs_after, p.params_after)
        assert r["energy"] == pytest.approx(p.energy)
        assert r["kernel_rel_error"] ** 2 == pytest.approx(1 - r["energy"], abs=1e-5)
    assert rows["block/c2"]["status"] == "kept" and rows["block/c2"]["macs_after"] == rows["block/c2"]["macs_before"]
    assert lines[-1].startswith("model: params") and f"{model_macs(d):,}" in lines[-1]
    err = rows["fc1"]["kernel_rel_error"]
    d.compile(keras.optimizers.SGD(0.5), "mse")
    d.fit(rng.random((16, 12, 12, 3)).astype("float32"), rng.random((16, 5)).astype("float32") * 10, verbose=0)
    assert decomposition_report(m, d, print_fn=None)[2]["kernel_rel_error"] != pytest.approx(err)


MODULES = ["svd", "macs", "rank", "plan", "rebuild", "decompose", "report", "__init__"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"keras_compress.decomposition.{name}".removesuffix(".__init__"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0

