"""What to_tflite produces: the in-memory route's file is the export route's file; LSTM, Embedding,
LayerNormalization and min_runtime behave as documented (issues 10, 12, 18)."""

from __future__ import annotations

import numpy as np
import pytest

from edgetpu.model import read_model
from keras_compress.convert import compare, to_tflite
from keras_compress.convert.calibration import calibration_samples
from keras_compress.convert.converter import convert_in_process, direct_route_works
from keras_compress.convert.options import ConversionOptions
from keras_compress.convert.recurrent import crash_risks, fusable_lstm_names
from keras_compress.convert.runtime import first_release, ops_too_new
from keras_compress.errors import ConversionError


def _ops(blob):
    return [(op.op, op.version) for op in read_model(blob).main.operators]


def _routes(model, mode, calib):
    opts = ConversionOptions.build(quantization=mode, verbose=False)
    samples = calibration_samples(model, calib, 100) if opts.mode.calibrated and calib is not None else None
    return [convert_in_process(model, opts, samples, route=r) for r in ("direct", "export")]


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8", "int16x8"])
def test_in_memory_route_writes_the_export_routes_model(small_cnn, digits, mode):
    (x, _), _ = digits
    direct, export = _routes(small_cnn, mode, x[:32])
    assert len(direct) == len(export)
    assert _ops(direct) == _ops(export)
    sg_d, sg_e = read_model(direct).main, read_model(export).main
    assert [sg_d.tensors[i].name for i in sg_d.inputs] == [sg_e.tensors[i].name for i in sg_e.inputs]  # serving_default_*


def test_in_memory_route_is_what_to_tflite_uses(small_cnn, small_tflite):
    assert direct_route_works()
    direct, _ = _routes(small_cnn, "float32", None)
    assert small_tflite["float32"] == direct


@pytest.mark.slow
def test_qat_model_gives_the_same_model_on_both_routes(small_cnn, digits):
    import keras

    from keras_compress.quantization import quantize_model

    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    qat = quantize_model(small_cnn)
    qat.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    direct, export = _routes(qat, "int8", None)
    assert len(direct) == len(export) and _ops(direct) == _ops(export)


@pytest.fixture(scope="module")
def lstm_classifier():
    """The issue's Keras 3 LSTM classifier, trained a little on a separable toy task (fixed seed)."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 28, 28)).astype("float32")
    y = (x[:, :, :5].mean(axis=(1, 2)) > 0).astype("int32") + 2 * (x[:, -5:, :].mean(axis=(1, 2)) > 0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.LSTM(20), keras.layers.Dense(10)], name="lstm_clf")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return model, x


def test_lstm_converts_to_full_int8_through_the_fused_op(lstm_classifier):
    model, x = lstm_classifier
    assert fusable_lstm_names(model) == [model.layers[0].name]
    assert crash_risks(model, fused=fusable_lstm_names(model)) == []  # so no separate process is needed
    blob = to_tflite(model, quantization="int8", representative_data=x[:64], target="edgetpu", verbose=False)
    sg = read_model(blob).main
    assert [op.op for op in sg.operators] == ["UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "FULLY_CONNECTED"]
    lstm = sg.operators[0]
    assert sg.tensors[lstm.inputs[0]].dtype == "int8" and sg.tensors[lstm.outputs[0]].dtype == "int8"
    states = [sg.tensors[i] for i in lstm.inputs if i >= 0 and sg.tensors[i].is_variable]
    assert sorted(t.dtype for t in states) == ["int16", "int8"]  # cell state int16, output state int8
    assert {t.dtype for t in sg.tensors} <= {"int8", "int16", "int32", "float32"}
    assert all(sg.tensors[i].dtype != "float32" for op in sg.operators for i in (*op.inputs, *op.outputs) if i >= 0)
    assert compare(model, blob, x[64:192])["top1_agreement"] >= 0.9


def test_lstm_float_modes_keep_todays_graph(lstm_classifier):
    model, _ = lstm_classifier
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in {op for op, _ in _ops(to_tflite(model, quantization="float32"))}


def test_unfusable_lstm_is_named_as_a_crash_risk():
    import keras

    m = keras.Sequential([keras.Input((6, 3)), keras.layers.Masking(), keras.layers.LSTM(4, name="masked_lstm")])
    assert fusable_lstm_names(m) == []
    [(layer, text)] = crash_risks(m)
    assert layer.name == "masked_lstm" and "mask" in text


@pytest.fixture(scope="module")
def token_model():
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((16,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, 8, name="embed")(tokens)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, keras.layers.Dense(4)(h), name="tokens_clf")


def test_embedding_model_keeps_int32_input_and_converts_to_full_int8(token_model):
    ids = np.random.default_rng(0).integers(0, 100, (64, 16))
    blob = to_tflite(token_model, quantization="int8", representative_data=ids[:32], verbose=False)
    sg = read_model(blob).main
    assert [sg.tensors[i].dtype for i in sg.inputs] == ["int32"]
    assert "CAST" not in {op.op for op in sg.operators} and "GATHER" in {op.op for op in sg.operators}
    gather = next(op for op in sg.operators if op.op == "GATHER")
    assert sg.tensors[gather.inputs[0]].dtype == "int8"  # the embedding table is int8
    assert compare(token_model, blob, ids[32:])["top1_agreement"] >= 0.9


def test_embedding_calibration_refuses_non_integral_ids(token_model):
    from keras_compress.errors import CalibrationDataError

    with pytest.raises(CalibrationDataError, match="integer input"):
        to_tflite(token_model, quantization="int8", representative_data=np.full((4, 16), 0.5), verbose=False)


@pytest.fixture(scope="module")
def layer_norm_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 16))
    h = keras.layers.LayerNormalization(name="my_norm")(keras.layers.Dense(16)(inp))
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(h)), name="ln_model")


def test_layer_norm_float_op_names_the_keras_layer_and_the_way_out(layer_norm_model):
    x = np.random.default_rng(0).normal(size=(16, 8, 16))
    with pytest.raises(ConversionError) as e:
        to_tflite(layer_norm_model, quantization="int8", representative_data=x, verbose=False)
    msg = str(e.value)
    assert "layer 'my_norm' (LayerNormalization)" in msg and "(NEG)" in msg, msg
    assert "float_layers=['my_norm']" in msg and "rsqrt" in msg
    assert "give representative_data" not in msg  # it was given


def test_float_layers_lets_the_named_layer_stay_float(layer_norm_model):
    x = np.random.default_rng(0).normal(size=(16, 8, 16))
    blob = to_tflite(layer_norm_model, quantization="int8", representative_data=x, float_layers=["my_norm"], verbose=False)
    assert "NEG" in {op for op, _ in _ops(blob)}
    with pytest.raises(ConversionError, match="my_norm"):
        to_tflite(layer_norm_model, quantization="int8", representative_data=x, float_layers=["other"], verbose=False)


def test_dynamic_range_for_tflite_2_14_has_no_newer_op(small_cnn):
    default = read_model(to_tflite(small_cnn, quantization="dynamic"))
    assert ("FULLY_CONNECTED", 12) in default.op_codes and ops_too_new(default, "2.14")
    blob = to_tflite(small_cnn, quantization="dynamic", min_runtime="2.14")
    model = read_model(blob)
    assert ops_too_new(model, "2.14") == []
    for op, version in model.op_codes:
        rel = first_release(op, version)
        assert rel is not None and tuple(map(int, rel.split("."))) <= (2, 14, 0), (op, version, rel)
    assert tuple(map(int, model.min_runtime_version.split("."))) <= (2, 14, 0)
    assert [v for op, v in model.op_codes if op == "FULLY_CONNECTED"] == [9]  # per-tensor Dense weights


def test_min_runtime_refuses_naming_op_version_and_release(small_cnn, tmp_path):
    out = tmp_path / "m.tflite"
    with pytest.raises(ConversionError) as e:
        to_tflite(small_cnn, out, quantization="dynamic", min_runtime="2.3")  # hybrid per-channel CONV_2D v5 is 2.4.0
    assert "CONV_2D version 5 needs TF Lite 2.4.0" in str(e.value) and "min_runtime='2.3'" in str(e.value)
    assert not out.exists()


def test_min_runtime_must_be_a_version(small_cnn):
    with pytest.raises(ConversionError, match="min_runtime: expected a TF Lite runtime release"):
        to_tflite(small_cnn, quantization="float32", min_runtime="latest")
