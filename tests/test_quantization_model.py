"""quantize_model / quantize_apply: graph rewrites, BN folding, saving, conversion, pruning, errors."""

import keras
import numpy as np
import pytest
from quantization_helpers import convert_qat, float_ops, ops_and_types, run_tflite

from keras_compress.errors import QuantizationError
from keras_compress.quantization import (
    QuantizeLayer,
    QuantizeWrapper,
    quantize_annotate_layer,
    quantize_apply,
    quantize_model,
)

L = keras.layers


def tiny_cnn(sequential=False, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [
        L.Conv2D(6, 3, padding="same", use_bias=False, name="conv"),
        L.BatchNormalization(name="bn"),
        L.ReLU(6.0, name="relu6"),
        L.DepthwiseConv2D(3, padding="same", name="dw"),
        L.BatchNormalization(name="dw_bn"),
        L.ReLU(name="relu"),
        L.MaxPooling2D(name="pool"),
        L.Flatten(name="flat"),
        L.Dropout(0.1, name="drop"),
        L.Dense(3, activation="softmax", name="logits"),
    ]
    if sequential:
        return keras.Sequential([keras.Input((8, 8, 2))] + layers, name="tiny")
    x = inp = keras.Input((8, 8, 2))
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x, name="tiny")


def tiny_resnet(seed=0):
    """Residual Add, a concat branch, zero padding, average pooling and GAP."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.Conv2D(8, 3, padding="same", use_bias=False, name="res_a")(x)
    y = L.BatchNormalization(name="res_a_bn")(y)
    y = L.ReLU(name="res_a_relu")(y)
    y = L.Conv2D(8, 3, padding="same", use_bias=False, name="res_b")(y)
    y = L.BatchNormalization(name="res_b_bn")(y)
    x = L.Add(name="add")([x, y])
    x = L.ReLU(name="add_relu")(x)
    b1 = L.Conv2D(4, 1, activation="relu", name="branch1")(x)
    b2 = L.Conv2D(4, 1, name="branch2")(x)
    x = L.Concatenate(name="concat")([b1, b2])
    x = L.ZeroPadding2D(name="pad")(x)
    x = L.AveragePooling2D(2, name="avg")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="tiny_resnet")


def data(shape, classes, n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + shape, dtype=np.float32), rng.integers(0, classes, n)


def fit(model, x, y, epochs=1, lr=1e-3, callbacks=None):
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks)
    return model


def wrapper(model, name):
    return model.get_layer(f"quant_{name}")


# ----------------------------------------------------------------- structure


@pytest.mark.parametrize("sequential", [False, True])
def test_structure_folds_bn_fuses_relu_and_keeps_same_scale_layers(sequential):
    qat = quantize_model(tiny_cnn(sequential))
    kinds = [type(l).__name__ for l in qat.layers]
    assert kinds == [
        "InputLayer", "QuantizeLayer", "QuantizeWrapper", "QuantizeWrapper", "QuantizeWrapper",
        "QuantizeWrapper", "MaxPooling2D", "Flatten", "Dropout", "QuantizeWrapper",
    ]  # fmt: skip
    assert not any(isinstance(l, L.BatchNormalization) for l in qat.layers)
    conv = wrapper(qat, "conv")
    assert conv.batch_norm.name == "bn" and not conv.quantize_output  # ReLU6 follows: fused
    assert wrapper(qat, "relu6").quantize_output
    assert conv.weight_quantizer.per_axis and not wrapper(qat, "logits").weight_quantizer.per_axis
    assert wrapper(qat, "logits").output_quantizer.max_value == pytest.approx(255 / 256)  # softmax fixed range


def test_quantized_copy_does_not_share_weights():
    model = tiny_cnn()
    before = [w.copy() for w in model.get_weights()]
    x, y = data((8, 8, 2), 3)
    fit(quantize_model(model), x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_folded_bn_matches_float_model_before_rounding():
    """With float BN statistics, the folded conv computes what conv + BN computed (up to int8 rounding)."""
    model = tiny_cnn()
    x, y = data((8, 8, 2), 3)
    fit(model, x, y, epochs=2)
    for name in ("bn", "dw_bn"):  # non-trivial statistics
        bn = model.get_layer(name)
        bn.moving_mean.assign(np.linspace(-0.5, 0.5, bn.moving_mean.shape[0]))
        bn.moving_variance.assign(np.linspace(0.5, 2.0, bn.moving_variance.shape[0]))
    qat = quantize_model(model)
    for layer in qat.layers:
        if isinstance(layer, QuantizeWrapper) and layer.batch_norm is not None:
            layer.batch_norm.trainable = False  # keep the float model's statistics
    fit(qat, x, y, epochs=1, lr=1e-9)  # learns ranges, weights unchanged
    ref, got = model.predict(x, verbose=0), qat.predict(x, verbose=0)
    assert np.abs(ref - got).max() < 0.03
    assert np.abs(ref - got).mean() < 0.01


def test_bn_moving_statistics_track_the_batch_in_training():
    model = tiny_cnn()
    model.get_layer("bn").momentum = 0.5
    qat = quantize_model(model)
    x, y = data((8, 8, 2), 3, n=128)
    x = x * 5.0 + 3.0  # far from the initial mean 0 / variance 1
    fit(qat, x, y, epochs=3, lr=1e-9)
    bn = wrapper(qat, "conv").batch_norm
    # reference: the statistics of the float conv output on the same data
    conv = keras.Model(model.inputs, model.get_layer("conv").output)
    conv.set_weights([wrapper(qat, "conv").layer.kernel.numpy()])
    z = conv.predict(x, verbose=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), z.mean(axis=(0, 1, 2)), rtol=0.15, atol=0.1)
    np.testing.assert_allclose(bn.moving_variance.numpy(), z.var(axis=(0, 1, 2)), rtol=0.3, atol=0.1)


# ---------------------------------------------------------- save and convert


def test_save_load_keras_round_trip(tmp_path):
    x, y = data((8, 8, 3), 4)
    qat = fit(quantize_model(tiny_resnet()), x, y)
    path = tmp_path / "qat.keras"
    qat.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    assert [type(l).__name__ for l in again.layers] == [type(l).__name__ for l in qat.layers]
    fit(again, x, y)  # still trains


@pytest.mark.parametrize(
    "make,shape,classes",
    [(tiny_cnn, (8, 8, 2), 3), pytest.param(tiny_resnet, (8, 8, 3), 4, marks=pytest.mark.slow)],  # resnet: 25-40 s
)
def test_converts_to_full_int8_from_trained_ranges(make, shape, classes):
    x, y = data(shape, classes, n=96)
    qat = fit(quantize_model(fit(make(), x, y, epochs=3)), x, y, epochs=2, lr=1e-4)
    blob = convert_qat(qat)
    assert float_ops(blob) == []
    names = [op for op, _, _ in ops_and_types(blob)]
    assert "DEQUANTIZE" not in names and "BATCH_NORM" not in " ".join(names)
    ref, got = qat.predict(x, verbose=0), run_tflite(blob, x)
    assert np.abs(ref - got).max() < 0.06  # a few softmax steps of 1/256
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.9
    if make is tiny_resnet:
        # ReLU after Add fused; the concat's producers take its range: no RELU op, no requantize
        assert not wrapper(qat, "add").quantize_output and wrapper(qat, "add_relu").quantize_output
        assert not wrapper(qat, "branch1").quantize_output and not wrapper(qat, "branch2").quantize_output
        assert "RELU" not in names and "QUANTIZE" not in names


# ------------------------------------------------------------- partial / errors


def test_unquantizable_layer_error_names_layer_and_type():
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(2, 3, name="c")(inp)
    x = L.Activation("elu", name="act")(x)
    model = keras.Model(inp, L.Flatten()(x))
    with pytest.raises(
        QuantizationError, match=r"layer 'act' \(Activation\) cannot be quantized: activation 'elu' keeps a float ELU op .*float_layers=\['act'\]"
    ):
        quantize_model(model)
    with pytest.raises(QuantizationError, match="no layer named 'nope'"):
        quantize_model(model, float_layers=["nope"])


@pytest.mark.parametrize(
    "make_float,tflite_op,same_scale",
    [
        (lambda: L.MaxPooling2D(1, name="odd"), "MAX_POOL_2D", True),
        (lambda: L.Activation("elu", name="odd"), "ELU", False),
    ],
)
def test_float_layers_stay_float_and_convert_with_calibration(make_float, tflite_op, same_scale):
    from keras_compress.convert import to_tflite
    from keras_compress.errors import ConversionError

    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c")(inp)
    x = make_float()(x)
    x = L.Conv2D(4, 3, name="c2")(x)
    out = L.Dense(2, name="d")(L.Flatten()(x))
    x_, _ = data((8, 8, 1), 2)
    model = keras.Model(inp, out)
    if not same_scale:
        with pytest.raises(QuantizationError, match="layer 'odd'"):
            quantize_model(model)
    qat = quantize_model(model, float_layers=["odd"])
    odd = qat.get_layer("odd")
    assert not isinstance(odd, QuantizeWrapper)
    assert isinstance(qat.layers[qat.layers.index(odd) + 1], QuantizeLayer)  # a range after it
    qat.compile("adam", "mse")
    qat.fit(x_, np.zeros((64, 2)), verbose=0, epochs=1)
    if not same_scale:  # TFLite has no int8 ELU: it stays float even with calibration data
        with pytest.raises(ConversionError, match="computes in float"):
            to_tflite(qat, quantization="int8", representative_data=x_, verbose=False)
        with pytest.raises(ConversionError, match="computes in float"):
            to_tflite(qat, quantization="int8", verbose=False)
        return
    blob = to_tflite(qat, quantization="int8", representative_data=x_, verbose=False)
    assert float_ops(blob) == []
    assert tflite_op in [op for op, _, _ in ops_and_types(blob)]
    # the op keeps its input's scale: its range is known without calibration
    assert float_ops(to_tflite(qat, quantization="int8", verbose=False)) == []


def test_annotate_then_apply_quantizes_only_annotated():
    inp = keras.Input((8, 8, 1))
    x = quantize_annotate_layer(L.Conv2D(4, 3, name="c"))(inp)
    x = L.Flatten(name="f")(x)
    out = L.Dense(2, name="d")(x)
    qat = quantize_apply(keras.Model(inp, out))
    assert isinstance(qat.get_layer("quant_c"), QuantizeWrapper)
    assert type(qat.get_layer("d")) is L.Dense
    with pytest.raises(QuantizationError, match="quantize_config must be a QuantizeConfig, found object"):
        quantize_annotate_layer(L.Dense(2), quantize_config=object())


def test_model_without_inputs_is_rejected():
    with pytest.raises(QuantizationError, match="has no defined inputs"):
        quantize_model(keras.Sequential([L.Dense(2)]))


# ------------------------------------------------------------------- pruning


def test_prune_strip_then_qat_keeps_zeros_exactly():
    from keras_compress.pruning import (
        ConstantSparsity,
        UpdatePruningStep,
        prune_low_magnitude,
        strip_pruning,
    )

    x, y = data((8, 8, 2), 3)
    pruned = prune_low_magnitude(
        tiny_cnn(), pruning_schedule=ConstantSparsity(0.5, 0, frequency=1), prune_depthwise=True
    )
    fit(pruned, x, y, callbacks=[UpdatePruningStep()])
    stripped = strip_pruning(pruned)
    zeros = {l.name: l.kernel.numpy() == 0 for l in stripped.layers if hasattr(l, "kernel")}
    assert all(z.mean() >= 0.45 for z in zeros.values())
    qat = fit(quantize_model(stripped, preserve_sparsity=True), x, y, epochs=2, lr=1e-2)
    for name, z in zeros.items():
        w = wrapper(qat, name)
        np.testing.assert_array_equal(w.layer.kernel.numpy() == 0, z)  # the variable itself stays zero
    # without preserve_sparsity the zeros are trained away
    plain = fit(quantize_model(stripped), x, y, epochs=2, lr=1e-2)
    assert (wrapper(plain, "conv").layer.kernel.numpy() == 0).mean() < 0.1


def test_qat_under_update_pruning_step_keeps_the_mask():
    from keras_compress.pruning import (
        ConstantSparsity,
        UpdatePruningStep,
        prune_low_magnitude,
    )

    x, y = data((8, 8, 2), 3)
    pruned = prune_low_magnitude(
        tiny_cnn(), pruning_schedule=ConstantSparsity(0.5, 0, frequency=1), prune_depthwise=True
    )
    qat = quantize_model(pruned)
    assert type(wrapper(qat, "prune_low_magnitude_conv").layer).__name__ == "PruneLowMagnitude"
    fit(qat, x, y, epochs=2, lr=1e-2, callbacks=[UpdatePruningStep()])
    for name in ("conv", "dw", "logits"):
        w = wrapper(qat, f"prune_low_magnitude_{name}")
        mask = np.asarray(w.layer.masks[0])
        assert 0.4 <= 1 - mask.mean() <= 0.6  # the schedule's sparsity
        effective = np.asarray(w.kernels()["kernel"])
        assert np.all(effective[mask == 0] == 0)
        assert np.all(w.layer.layer.kernel.numpy()[mask == 0] == 0)
    assert float_ops(convert_qat(qat)) == []


def test_fine_tune_qat_recipe_trains_a_copy():
    from keras_compress.quantization import fine_tune_qat

    model = tiny_cnn()
    x, y = data((8, 8, 2), 3)
    before = [w.copy() for w in model.get_weights()]
    qat = fine_tune_qat(model, x, y, epochs=1, learning_rate=1e-3, batch_size=16)
    assert any(isinstance(l, QuantizeWrapper) for l in qat.layers)
    assert int(qat.optimizer.iterations.numpy()) == 4  # 64 samples / 16
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
