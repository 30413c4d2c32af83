"""4-bit weight QAT: the int4 values in the .tflite are the trained fake-quantized weights."""

import numpy as np
import pytest

import keras

from edgetpu.model import read_model
from keras_compress.convert import to_tflite
from keras_compress.errors import CompressError
from keras_compress.quantization import quantize_model
from keras_compress.quantization.lowbit import float_export, qat_weight_bits


def _model(bn: bool):
    keras.utils.set_random_seed(1)
    norm = [keras.layers.BatchNormalization(name="bn")] if bn else []
    return keras.Sequential([
        keras.Input((10, 10, 3)),
        keras.layers.Conv2D(8, 3, name="stem"),
        keras.layers.ReLU(),
        keras.layers.Conv2D(16, 3, name="body"), *norm,
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(24, activation="relu", name="fc"),
        keras.layers.Dense(4, name="head"),
    ], name="small")


def _trained(bn: bool):
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 10, 10, 3), dtype=np.float32), rng.random((32, 4), dtype=np.float32)
    qat = quantize_model(_model(bn), weight_bits=4)
    qat.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    qat.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return qat, x


def _int4(blob: bytes, layer: str):
    m = read_model(blob)
    t = next(t for t in m.main.tensors if t.dtype == "int4" and f"quant_{layer}_" in t.name)
    return m.tensor_data(t), np.asarray(t.scale)


@pytest.fixture(scope="module")
def trained():
    return _trained(bn=False)


def test_plan_first_last_at_8_bits(trained):
    qat, _ = trained
    assert qat_weight_bits(qat) == {"stem": 8, "body": 4, "fc": 4, "head": 8}


@pytest.mark.parametrize("layer, oihw", [("body", (3, 0, 1, 2)), ("fc", (1, 0))])
def test_int4_values_equal_fake_quantized_training_weights(trained, layer, oihw):
    qat, _ = trained
    blob = to_tflite(qat, quantization="int4_weights", verbose=False)
    q, scale = _int4(blob, layer)
    wrapper = qat.get_layer(f"quant_{layer}")
    fq = np.asarray(wrapper.weight_quantizer(wrapper.layer.kernel, True, {}))  # TF's FakeQuant, as in training
    fq = np.transpose(fq, oihw)  # TFLite stores the output channel first
    train_scale = np.abs(fq).reshape(fq.shape[0], -1).max(1) / 7
    np.testing.assert_allclose(scale, train_scale, rtol=1e-5)
    expect = np.round(fq / train_scale.reshape((-1,) + (1,) * (fq.ndim - 1)))
    np.testing.assert_array_equal(q, expect)
    np.testing.assert_allclose(q * scale.reshape(expect.shape[:1] + (1,) * (fq.ndim - 1)), fq, atol=1e-6)
    assert q.min() >= -7 and q.max() <= 7 and len(np.unique(q)) > 8


def test_batchnorm_folded_export_not_requantized():
    """With BN folded into the conv, the int4 model computes what the float export of the QAT weights computes."""
    qat, x = _trained(bn=True)
    with float_export():
        f32 = to_tflite(qat, quantization="float32", verbose=False)
    q4 = to_tflite(qat, quantization="int4_weights", verbose=False)
    assert len(q4) < 0.6 * len(f32)
    from ai_edge_litert.interpreter import Interpreter

    outs = []
    for blob in (f32, q4):
        r = Interpreter(model_content=blob).get_signature_runner()
        (name,) = r.get_input_details()
        outs.append(np.concatenate([next(iter(r(**{name: x[i:i + 1]}).values())) for i in range(4)]))
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)


def test_int4_qat_refuses_int8_route(trained):
    qat, x = trained
    with pytest.raises(CompressError, match="weight_bits=4"):
        to_tflite(qat, quantization="int8", representative_data=x, verbose=False)


def test_weight_bits_checked():
    with pytest.raises(CompressError, match="weight_bits"):
        quantize_model(_model(False), weight_bits=3)
    with pytest.raises(CompressError, match="nope"):
        quantize_model(_model(False), weight_bits=4, int8_layers=["nope"])
