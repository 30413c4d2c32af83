"""QAT of each layer family the keras.applications models and attention / text models are made of.

Every case: a tiny model -> quantize_model -> a few training steps -> to_tflite("int8")
with no calibration data -> no float op, the expected TFLite ops, and the int8 model
agreeing with the QAT model.
"""

import re

import keras
import numpy as np
import pytest
from quantization_helpers import convert_qat, float_ops, ops_and_types, run_tflite

from keras_compress.errors import QuantizationError
from keras_compress.quantization import QuantizeLayer, QuantizeWrapper, quantize_model

L = keras.layers


def _functional(shape, body, dtype="float32"):
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape, dtype=dtype)
    return keras.Model(inp, body(inp))


def bn_after_dense():
    return keras.Sequential([keras.Input((8,)), L.Dense(4, name="d"), L.BatchNormalization(name="bn"), L.Dense(2)])


def bn_standalone():
    """A BatchNormalization no conv absorbs (after an Add), then ReLU: MUL, ADD (ReLU fused)."""

    def body(x):
        a = L.Conv2D(4, 1, name="a")(x)
        b = L.Conv2D(4, 1, name="b")(x)
        y = L.BatchNormalization(name="bn")(L.Add(name="add")([a, b]))
        return L.Dense(3)(L.Flatten()(L.ReLU()(y)))

    return _functional((4, 4, 3), body)


def rescaling_normalization():
    def body(x):
        x = L.Rescaling(1 / 255.0, name="rescale")(x)
        x = L.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.04, 0.05, 0.06], name="norm")(x)
        x = L.Conv2D(4, 3, activation="relu")(x)
        return L.Dense(3)(L.GlobalAveragePooling2D()(x))

    return _functional((6, 6, 3), body)


def hard_swish_operations():
    """MobileNetV3's blocks: `x + 3.0`, `x * (1 / 6)` are Keras operations, not layers."""

    def body(x):
        x = L.Conv2D(4, 1, name="c")(x)
        hs = L.ReLU(6.0, name="relu6")(x + 3.0) * (1.0 / 6.0)
        x = L.Multiply(name="hswish")([x, hs])
        se = L.GlobalAveragePooling2D(keepdims=True)(x)
        se = L.Conv2D(4, 1, activation="hard_sigmoid", name="se")(se)
        x = L.Multiply()([x, se])
        x = L.Activation("hard_swish", name="hsw")(L.Conv2D(4, 1)(x))
        return L.Dense(3)(L.Flatten()(x))

    return _functional((4, 4, 3), body)


def separable_xception():
    def body(x):
        x = L.Activation("relu")(x)
        x = L.SeparableConv2D(6, 3, padding="same", use_bias=False, name="sep")(x)
        x = L.BatchNormalization(name="sep_bn")(x)
        return L.Dense(3)(L.GlobalAveragePooling2D()(L.ReLU()(x)))

    return _functional((6, 6, 3), body)


def conv1d_gru():
    def body(x):
        x = L.Conv1D(6, 3, padding="causal", activation="relu", name="c1")(x)
        x = L.MaxPooling1D(2)(x)
        x = L.GRU(5, return_sequences=True, name="gru")(x)
        x = L.LSTM(4, name="lstm")(x)
        return L.Dense(3)(x)

    return _functional((8, 3), body)


def attention_block():
    def body(x):
        h = L.LayerNormalization(name="ln")(x)
        h = L.MultiHeadAttention(2, 4, name="mha")(h, h)
        x = L.Add()([x, h])
        h = L.Dense(16, activation="gelu", name="mlp")(L.LayerNormalization()(x))
        x = L.Add()([x, L.Dense(8)(h)])
        return L.Dense(3)(L.GlobalAveragePooling1D()(x))

    return _functional((5, 8), body)


def nested_stem():
    """ConvNeXt-style: a nested Sequential stem with LayerNormalization, a LayerScale-like Multiply."""
    stem = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 2, strides=2), L.LayerNormalization(epsilon=1e-6)], name="stem")

    def body(x):
        x = stem(x)
        h = L.Dense(8, activation="gelu")(x)
        x = x + L.Dense(4)(h)
        return L.Dense(3)(L.GlobalAveragePooling2D()(x))

    return _functional((8, 8, 3), body)


CASES = {
    "bn_after_dense": (bn_after_dense, (8,), ["FULLY_CONNECTED"]),
    "bn_standalone": (bn_standalone, (4, 4, 3), ["MUL", "ADD"]),
    "rescaling_normalization": (rescaling_normalization, (6, 6, 3), ["MUL", "SUB"]),
    "hard_swish_operations": (hard_swish_operations, (4, 4, 3), ["ADD", "MUL", "HARD_SWISH"]),
    "separable_xception": (separable_xception, (6, 6, 3), ["DEPTHWISE_CONV_2D", "CONV_2D"]),
    "conv1d_gru": (conv1d_gru, (8, 3), ["CONV_2D", "LOGISTIC", "TANH", "SUB"]),
    "attention_block": (attention_block, (5, 8), ["BATCH_MATMUL", "SOFTMAX", "RSQRT", "GELU"]),
    "nested_stem": (nested_stem, (8, 8, 3), ["CONV_2D", "RSQRT", "GELU"]),
}


def _slow_but(fast, cases):
    """``cases`` as parameters, all but ``fast`` marked slow (each costs 10-60 s of tracing and conversion)."""
    return [pytest.param(c, marks=() if c == fast else pytest.mark.slow) for c in cases]


@pytest.mark.parametrize("case", _slow_but("bn_after_dense", CASES))
def test_qat_converts_to_full_int8_without_calibration(case):
    make, shape, expected_ops = CASES[case]
    model = make()
    rng = np.random.default_rng(0)
    x = rng.random((32,) + shape, dtype=np.float32) * (255.0 if case == "rescaling_normalization" else 1.0)
    y = rng.integers(0, model.compute_output_shape((1, *shape))[-1], 32)
    qat = quantize_model(model)
    qat.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, epochs=2, batch_size=8, verbose=0)
    blob = convert_qat(qat)
    assert float_ops(blob) == []
    names = {op for op, _, _ in ops_and_types(blob)}
    assert set(expected_ops) <= names, names
    ref, got = qat.predict(x, verbose=0), run_tflite(blob, x)
    scale = np.abs(ref).max() + 1e-6
    assert np.abs(ref - got).max() / scale < 0.12  # a few int8 steps of the output range
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.8


def test_bn_after_dense_folds_and_bn_elsewhere_takes_the_mask_keyword():
    """Keras records `mask=None` in BatchNormalization calls: the wrapper must accept and forward it."""
    qat = quantize_model(bn_after_dense())
    assert qat.get_layer("quant_d").batch_norm.name == "bn"
    assert not any(type(l) is L.BatchNormalization for l in qat.layers)
    qat = quantize_model(bn_standalone())
    assert qat.get_layer("quant_bn").kind == "affine"
    assert not qat.get_layer("quant_bn").quantize_output  # the ReLU after it is fused into its ADD


def test_operation_nodes_get_ranges_and_relu6_fuses_into_the_add():
    qat = quantize_model(hard_swish_operations())
    ranges = [l.name for l in qat.layers if isinstance(l, QuantizeLayer)]
    # `x * (1/6)` gets a range; `x + 3.0` has none (the ReLU6 after it fuses into its ADD)
    assert any(re.fullmatch(r"quant_multiply(_\d+)?", n) for n in ranges), ranges
    assert not any(re.fullmatch(r"quant_add(_\d+)?", n) for n in ranges), ranges
    assert qat.get_layer("quant_relu6").quantize_output


def test_model_input_of_integer_ids_is_not_quantized():
    def body(ids):
        a = L.Embedding(20, 4, mask_zero=True, name="emb_a")(ids)
        b = L.Embedding(20, 4, mask_zero=True, name="emb_b")(ids)
        x = L.Concatenate(name="concat")([a, b])  # concatenates the masks too
        x = L.Conv1D(4, 3)(x)
        return L.Dense(3)(L.GlobalMaxPooling1D()(x))

    model = _functional((6,), body, dtype="int32")
    qat = quantize_model(model)
    assert not any(isinstance(l, QuantizeLayer) and l.name.startswith("quantize_input") for l in qat.layers)
    emb = qat.get_layer("quant_emb_a")
    assert isinstance(emb, QuantizeWrapper) and not emb.quantize_output  # GATHER keeps the table's scale
    ids = np.random.default_rng(0).integers(0, 20, (4, 6))
    np.testing.assert_allclose(qat.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=0.1)


@pytest.mark.parametrize(
    "layer,needle",
    [
        (lambda: L.Activation("elu", name="odd"), "activation 'elu' keeps a float ELU op"),
        (lambda: L.UpSampling2D(interpolation="bicubic", name="odd"), "interpolation 'bicubic'"),
    ],
)
def test_unquantizable_layers_name_the_reason(layer, needle):
    model = _functional((4, 4, 3), lambda x: L.Flatten()(layer()(L.Conv2D(2, 1)(x))))
    with pytest.raises(QuantizationError, match=rf"layer 'odd' \(\w+\) cannot be quantized: {needle}"):
        quantize_model(model)


def test_operation_without_int8_kernel_names_the_operation():
    model = _functional((4,), lambda x: L.Dense(2)(x) / L.Dense(2)(x))
    with pytest.raises(QuantizationError, match=r"operation 'true_divide' \(TrueDivide\) cannot be quantized: .*no int8 DIV"):
        quantize_model(model)
    negated = quantize_model(_functional((4,), lambda x: L.Dense(2)(-L.Dense(3)(x))))
    assert float_ops(convert_qat(negated)) == []  # -x becomes x * -1 (TFLite keeps NEG in float)


def test_subclass_of_a_builtin_layer_is_not_taken_for_its_base_class():
    class Doubled(L.Dense):
        def call(self, x):
            return super().call(x) * 2.0

    model = _functional((4,), lambda x: Doubled(2, name="doubled")(x))
    with pytest.raises(QuantizationError, match=r"layer 'doubled' \(Doubled\) cannot be quantized: it subclasses Dense"):
        quantize_model(model)


def test_masked_average_and_masked_attention_are_refused_with_the_reason():
    def body(ids):
        x = L.Embedding(20, 8, mask_zero=True)(ids)
        a = L.MultiHeadAttention(2, 4, name="mha")(x, x)  # Keras passes the masks to it
        return L.Dense(3)(L.GlobalAveragePooling1D(name="gap")(a))

    model = _functional((6,), body, dtype="int32")
    with pytest.raises(QuantizationError, match=r"layer 'gap' \(GlobalAveragePooling1D\) cannot be quantized: a masked average"):
        quantize_model(model)
    with pytest.raises(QuantizationError, match=r"layer 'mha' \(MultiHeadAttention\) cannot be quantized: its input carries a Keras mask"):
        quantize_model(model, float_layers=["gap"])


@pytest.mark.parametrize(
    "case", _slow_but("separable_xception", ["attention_block", "conv1d_gru", "separable_xception", "nested_stem", "hard_swish_operations"])
)
def test_qat_models_save_and_load(case, tmp_path):
    make, shape, _ = CASES[case]
    qat = quantize_model(make())
    x = np.random.default_rng(0).random((8,) + shape, dtype=np.float32)
    qat.compile("adam", "mse")
    qat.fit(x, qat.predict(x, verbose=0), epochs=1, batch_size=8, verbose=0)  # ranges learned
    qat.save(tmp_path / "qat.keras")
    again = keras.models.load_model(tmp_path / "qat.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-5)


def test_wrapper_accepts_and_forwards_the_keywords_keras_passes():
    x = np.ones((2, 5, 4), "float32")
    gap = QuantizeWrapper(L.GlobalAveragePooling1D())
    assert tuple(gap(x, mask=None).shape) == (2, 4)
    mask = np.array([[True] * 3 + [False] * 2] * 2)
    x[:, 3:] = 100.0  # masked steps must not count
    np.testing.assert_allclose(gap(x, mask=mask), np.ones((2, 4)), atol=0.05)
    bn = QuantizeWrapper(L.BatchNormalization())
    assert tuple(bn(np.ones((2, 4), "float32"), mask=None, training=False).shape) == (2, 4)
