"""4-bit modes of to_tflite through AI Edge Quantizer: weight types read back from the file, sizes, runtimes."""

import numpy as np
import pytest

import keras

from edgetpu.model import read_model
from keras_compress.convert import to_tflite
from keras_compress.convert.lowbit import weight_bits, weighted_ops
from keras_compress.errors import CompressError


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(8, 3, activation="relu", name="stem"),
        keras.layers.Conv2D(32, 3, activation="relu", name="body"),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(64, activation="relu", name="fc"),
        keras.layers.Dense(5, name="head"),
    ], name="cnn")


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((16, 12, 12, 3), dtype=np.float32)


def _weight_types(blob: bytes, model) -> dict:
    """{layer: dtype of its stored weights} (through the DEQUANTIZE of weight-only models)."""
    return {w.layer: w.weight_dtype for w in weighted_ops(blob, model)}


def _run(blob: bytes, x1: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=blob)
    runner = it.get_signature_runner()
    (name, d), = runner.get_input_details().items()
    if d["dtype"] == np.int8:
        s, z = d["quantization"]
        x1 = np.clip(np.round(x1 / s + z), -128, 127).astype(np.int8)
    (out,) = runner(**{name: x1}).values()
    od = runner.get_output_details()["output_0"]
    if od["dtype"] == np.int8:
        s, z = od["quantization"]
        out = (out.astype(np.float32) - z) * s
    return out


@pytest.mark.parametrize("mode", ["int4_weights", "int4_int8"])
def test_int4_weights_read_back_first_last_at_8_bits(cnn, x, mode):
    blob = to_tflite(cnn, quantization=mode, representative_data=x, verbose=False)
    types = _weight_types(blob, cnn)
    # first and last weighted layers stay 8-bit by default; depthwise has no 4-bit kernel in AEQ's policy
    assert types == {"stem": "int8", "body": "int4", "dw": "int8", "fc": "int4", "head": "int8"}
    sg = read_model(blob).main
    if mode == "int4_int8":
        assert all(sg.tensors[i].dtype in ("int8", "int4", "int32") for op in sg.operators for i in op.inputs if i >= 0)
    else:
        assert {op.op for op in sg.operators} == {"DEQUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"}
    ref = np.asarray(cnn(x[:1]))
    got = _run(blob, x[:1])
    assert np.max(np.abs(got - ref)) < 0.1 * np.max(np.abs(ref)) + 1e-3


def test_int4_smaller_than_int8_and_override(cnn, x):
    f32 = to_tflite(cnn, quantization="float32", verbose=False)
    dyn = to_tflite(cnn, quantization="dynamic", verbose=False)
    default = to_tflite(cnn, quantization="int4_weights", verbose=False)
    all4 = to_tflite(cnn, quantization="int4_weights", int8_layers=(), verbose=False)
    body8 = to_tflite(cnn, quantization="int4_weights", int8_layers=["body"], verbose=False)
    assert len(all4) < len(default) < len(dyn) < len(f32)
    assert _weight_types(all4, cnn) == {"stem": "int4", "body": "int4", "dw": "int8", "fc": "int4", "head": "int4"}
    assert _weight_types(body8, cnn)["body"] == "int8" and _weight_types(body8, cnn)["head"] == "int4"


def test_int4_values_are_aeq_scheme(cnn):
    """Symmetric per output channel, scale max|w|/7, values in [-7, 7]: read from the file."""
    blob = to_tflite(cnn, quantization="int4_weights", int8_layers=(), verbose=False)
    m = read_model(blob)
    t = next(t for t in m.main.tensors if t.dtype == "int4" and "body" in t.name)
    q = m.tensor_data(t)
    w = cnn.get_layer("body").kernel.numpy()  # (3, 3, 8, 32) HWIO; TFLite stores OHWI
    w = np.transpose(w, (3, 0, 1, 2))
    scale = np.abs(w).reshape(32, -1).max(1) / 7
    np.testing.assert_allclose(np.asarray(t.scale), scale, rtol=1e-6)
    np.testing.assert_array_equal(q, np.round(w / scale[:, None, None, None]))
    assert q.min() >= -7 and q.max() <= 7


@pytest.mark.parametrize("kwargs, msg", [
    ({"quantization": "int4_weights", "int8_layers": ["nope"]}, "nope"),
    ({"quantization": "int8", "int8_layers": ["stem"]}, "only for quantization='int4_weights'"),
    ({"quantization": "int4_weights", "target": "edgetpu"}, "edgetpu"),
    ({"quantization": "int4_int8"}, "representative_data"),
    ({"quantization": "int4_weights", "min_runtime": "2.14"}, "op version 1"),
])
def test_int4_bad_arguments(cnn, kwargs, msg):
    with pytest.raises(CompressError, match=msg):
        to_tflite(cnn, verbose=False, **kwargs)


def test_weight_bits_default_and_override():
    assert weight_bits(["a", "b", "c"], None) == {"a": 8, "b": 4, "c": 8}
    assert weight_bits(["a", "b", "c"], ()) == {"a": 4, "b": 4, "c": 4}
    assert weight_bits(["a"], None) == {"a": 8}


def test_compare_per_layer(cnn, x):
    from keras_compress.convert import compare

    all4 = to_tflite(cnn, quantization="int4_weights", int8_layers=(), verbose=False)
    all8 = to_tflite(cnn, quantization="int4_weights", int8_layers=["stem", "body", "dw", "fc", "head"], verbose=False)
    r4, r8 = (compare(cnn, b, x, per_layer=True) for b in (all4, all8))
    assert {"stem", "body", "dw", "fc", "output"} <= set(r4["per_layer_sqnr_db"])
    # 8-bit weights are ~24 dB closer to float than 4-bit ones at the first layer (6 dB per bit)
    assert r8["per_layer_sqnr_db"]["stem"] > r4["per_layer_sqnr_db"]["stem"] + 15
    assert "per_layer_sqnr_db" not in compare(cnn, all4, x)
