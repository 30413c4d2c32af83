"""to_tflite in every mode, calibration-data errors, atomic writes, compare()."""

from __future__ import annotations

import numpy as np
import pytest

from edgetpu.model import read_model
from keras_compress.convert import compare, sqnr_db, to_tflite
from keras_compress.errors import CalibrationDataError, ConversionError

ALL_MODES = ("float32", "float16", "dynamic", "int8", "int16x8")


def _io_dtypes(blob):
    sg = read_model(blob).main
    return [sg.tensors[i].dtype for i in sg.inputs], [sg.tensors[i].dtype for i in sg.outputs]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_mode_converts_and_keeps_accuracy(mode, small_tflite, small_cnn, digits):
    blob = small_tflite[mode]
    assert blob[4:8] == b"TFL3"
    _, (x_test, _) = digits
    result = compare(small_cnn, blob, x_test[:120])
    # float modes are near exact; 8/16-bit modes stay close to the float model.
    assert result["top1_agreement"] >= (0.99 if mode in ("float32", "float16") else 0.95), result
    assert result["sqnr_db"] > (60 if mode == "float32" else 15), result


def test_sizes_follow_the_mode(small_tflite):
    f32, f16, dyn, i8 = (len(small_tflite[m]) for m in ("float32", "float16", "dynamic", "int8"))
    assert f16 < 0.6 * f32
    assert dyn < 0.4 * f32 and i8 < 0.4 * f32


def test_int8_is_full_integer(small_tflite):
    model = read_model(small_tflite["int8"])
    ins, outs = _io_dtypes(small_tflite["int8"])
    assert ins == ["int8"] and outs == ["int8"]
    ops = {op.op for op in model.main.operators}
    assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops, ops
    for t in model.main.tensors:
        # Activations and weights int8; biases int32 (TFLite's int8 scheme).
        assert t.dtype in ("int8", "int32"), (t.name, t.dtype)


def test_int16x8_has_int16_activations(small_tflite):
    ins, outs = _io_dtypes(small_tflite["int16x8"])
    assert ins == ["int16"] and outs == ["int16"]


def test_float_modes_keep_float_io(small_tflite):
    for mode in ("float32", "float16", "dynamic"):
        ins, outs = _io_dtypes(small_tflite[mode])
        assert ins == ["float32"] and outs == ["float32"], mode


@pytest.mark.parametrize("io", ["uint8", "float32"])
def test_int8_io_types(io, small_cnn, digits):
    (x, _), (x_test, _) = digits
    blob = to_tflite(small_cnn, quantization="int8", representative_data=x[:32], input_type=io, output_type=io, verbose=False)
    ins, outs = _io_dtypes(blob)
    assert ins == [io] and outs == [io]
    assert compare(small_cnn, blob, x_test[:60])["top1_agreement"] >= 0.95


def test_static_batch_of_one_by_default(small_tflite):
    sg = read_model(small_tflite["int8"]).main
    t = sg.tensors[sg.inputs[0]]
    assert t.shape == (1, 32, 32, 1)
    assert not t.is_dynamic


def test_path_is_written_atomically(tmp_path, small_cnn):
    out = tmp_path / "sub" / "m.tflite"
    blob = to_tflite(small_cnn, out, quantization="float32")
    assert out.read_bytes() == blob
    assert [p.name for p in out.parent.iterdir()] == ["m.tflite"]  # no temp file left behind


def test_wrong_calibration_shape_names_expected_and_received(small_cnn, tmp_path):
    out = tmp_path / "m.tflite"
    with pytest.raises(CalibrationDataError) as e:
        to_tflite(small_cnn, out, quantization="int8", representative_data=np.zeros((8, 28, 28, 1), np.float32))
    msg = str(e.value)
    assert "(N, 32, 32, 1)" in msg and "(8, 28, 28, 1)" in msg
    assert not out.exists()


def test_wrong_calibration_dtype(small_cnn):
    with pytest.raises(CalibrationDataError, match="numeric"):
        to_tflite(small_cnn, quantization="int8", representative_data=np.full((4, 32, 32, 1), "a"))


def test_int8_without_calibration_data_is_refused(small_cnn):
    with pytest.raises(CalibrationDataError, match="representative_data"):
        to_tflite(small_cnn, quantization="int8")


def test_calibration_accepts_tf_dataset_and_iterables(small_cnn, digits):
    import tensorflow as tf

    (x, y), _ = digits
    ds = tf.data.Dataset.from_tensor_slices((x[:16], y[:16])).batch(4)
    a = to_tflite(small_cnn, quantization="int8", representative_data=ds, verbose=False)
    b = to_tflite(small_cnn, quantization="int8", representative_data=(x[i : i + 4] for i in range(0, 16, 4)), verbose=False)
    assert a == b  # same 16 samples, same ranges, same model


def test_bad_mode_and_target():
    import keras

    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ConversionError, match="'int4'"):
        to_tflite(m, quantization="int4")
    with pytest.raises(ConversionError, match="target"):
        to_tflite(m, quantization="int8", target="tpu", representative_data=np.zeros((2, 4)))
    with pytest.raises(ConversionError, match="int8"):
        to_tflite(m, quantization="float16", target="edgetpu")
    with pytest.raises(ConversionError, match="input_type"):
        to_tflite(m, quantization="float32", input_type="int8")


def test_failed_conversion_leaves_no_file(tmp_path):
    """A model the converter cannot take (QR has no TFLite builtin) writes nothing and says which op."""
    import keras

    inputs = keras.Input((16,))
    outputs = keras.layers.Lambda(lambda t: keras.ops.reshape(keras.ops.qr(keras.ops.reshape(t, (-1, 4, 4)))[0], (-1, 16)))(inputs)
    m = keras.Model(inputs, outputs)
    out = tmp_path / "bad.tflite"
    out_existing = tmp_path / "keep.tflite"
    out_existing.write_bytes(b"old")
    for target in (out, out_existing):
        with pytest.raises(ConversionError) as e:
            to_tflite(m, target, quantization="int8", representative_data=np.random.rand(8, 16).astype("float32"), verbose=False)
        assert "tf.Qr" in str(e.value) and "MLIR" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tflite"]
    assert out_existing.read_bytes() == b"old"  # a failed conversion leaves an old file as it was


def test_sqnr():
    ref = np.array([1.0, -2.0, 3.0])
    assert sqnr_db(ref, ref) == float("inf")
    assert sqnr_db(ref, ref * 0.9) == pytest.approx(20.0)


def test_compare_keys(small_cnn, small_tflite, digits):
    _, (x_test, _) = digits
    r = compare(small_cnn, small_tflite["float32"], x_test[:10])
    assert set(r) >= {"top1_agreement", "max_abs_error", "sqnr_db"}
    assert r["max_abs_error"] < 1e-3


@pytest.fixture(scope="module")
def tiny_qat(small_cnn, digits):
    from keras_compress.quantization import quantize_model

    (x, y), _ = digits
    qat = quantize_model(small_cnn)
    qat.compile(optimizer="adam", loss=__import__("keras").losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x[:256], y[:256], epochs=1, batch_size=32, verbose=0)
    return qat


def test_qat_model_converts_to_full_int8_without_calibration_data(tiny_qat, digits):
    _, (x_test, _) = digits
    blob = to_tflite(tiny_qat, quantization="int8", verbose=False)
    model = read_model(blob)
    assert all(t.dtype in ("int8", "int32") for t in model.main.tensors), {t.dtype for t in model.main.tensors}
    assert compare(tiny_qat, blob, x_test[:100])["top1_agreement"] >= 0.97


def test_int8_refuses_a_result_with_float_ops(small_cnn, digits):
    """A QAT model with a layer left in float and no calibration data is not full integer: say so."""
    from keras_compress.quantization import quantize_model

    dense = next(l.name for l in small_cnn.layers if l.__class__.__name__ == "Dense")
    qat = quantize_model(small_cnn, float_layers=[dense])
    (x, _), _ = digits
    qat(x[:32], training=True)
    with pytest.raises(ConversionError, match=r"computes in float.*representative_data"):
        to_tflite(qat, quantization="int8", verbose=False)
    # With calibration data the converter quantizes the float layer too.
    blob = to_tflite(qat, quantization="int8", representative_data=x[:64], verbose=False)
    assert blob[4:8] == b"TFL3"


