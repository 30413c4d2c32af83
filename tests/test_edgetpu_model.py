"""edgetpu.model: reading .tflite flatbuffers without TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from fakes.tflite_builder import Graph, compiled_model, conv_chain

from edgetpu.errors import InvalidModelError
from edgetpu.model import Model, is_compiled, read_model


def test_reads_ops_tensors_and_quantization_of_a_converted_model(tflite_model):
    m = read_model(tflite_model("tiny_int8"))
    assert isinstance(m, Model)
    sg = m.main
    assert [op.op for op in sg.operators] == ["CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert all(op.version >= 1 for op in sg.operators)
    conv = sg.operators[0]
    assert conv.options["dilationWFactor"] == 1 and conv.options["dilationHFactor"] == 1
    assert conv.options_type == "Conv2DOptions"
    x = sg.tensors[sg.inputs[0]]
    assert x.dtype == "int8" and x.shape == (1, 16, 16, 3)
    assert x.quantized and x.scale[0] > 0 and len(x.zero_point) == 1
    assert not x.is_constant and x.buffer_bytes == 0
    w = sg.tensors[conv.inputs[1]]
    assert w.is_constant and w.dtype == "int8" and w.buffer_bytes == int(np.prod(w.shape))
    # Per-channel conv weights: one scale per output channel.
    assert len(w.scale) == w.shape[0]
    assert m.tensor_data(w).shape == w.shape
    assert m.min_runtime_version and m.min_runtime_version[0].isdigit()
    assert not m.has_edgetpu_custom_op and not is_compiled(tflite_model("tiny_int8"))


def test_reads_path_bytes_and_model_alike(tflite_model):
    p = tflite_model("tiny_int8")
    a = read_model(p)
    b = read_model(p.read_bytes())
    assert read_model(a) is a
    assert [o.op for o in a.main.operators] == [o.op for o in b.main.operators]
    assert a.source == str(p) and b.source == "<bytes>"


def test_shape_signature_marks_dynamic_batch(tflite_model):
    m = read_model(tflite_model("tiny_dynamic_batch"))
    x = m.main.tensors[m.main.inputs[0]]
    assert x.shape_signature is not None and x.shape_signature[0] == -1 and x.is_dynamic
    static = read_model(tflite_model("tiny_int8"))
    assert not static.main.tensors[static.main.inputs[0]].is_dynamic


def test_hand_built_options_custom_op_and_metadata():
    g = conv_chain(1)
    g.metadata["min_runtime_version"] = b"2.9.0\0\0\0\0\0\0\0\0\0\0\0"
    data = g.build()
    m = read_model(data)
    assert m.min_runtime_version == "2.9.0"
    assert m.main.operators[0].op == "CONV_2D"
    c = read_model(compiled_model())
    assert c.has_edgetpu_custom_op and is_compiled(compiled_model())
    op = c.main.operators[0]
    assert op.op == "edgetpu-custom-op" and op.is_custom and op.custom_code == "edgetpu-custom-op"


def test_unequal_dilation_and_strides_are_read():
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    w = g.tensor("w", "int8", [4, 3, 3, 4], data=np.ones((4, 3, 3, 4)))
    y = g.tensor("y", "int8", [1, 8, 8, 4], output=True)
    g.op("CONV_2D", [x, w, -1], [y], version=2, dilationWFactor=2, dilationHFactor=1, strideW=2)
    op = read_model(g.build()).main.operators[0]
    assert op.inputs == (0, 1, -1)
    assert (op.options["dilationWFactor"], op.options["dilationHFactor"], op.options["strideW"]) == (2, 1, 2)


@pytest.mark.parametrize(
    "content, found",
    [
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "PNG image"),
        (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "identifier"),
        (b"abc", "only 3 bytes"),
    ],
)
def test_bad_files_say_what_was_expected_and_found(tmp_path, content, found):
    p = tmp_path / "bad.tflite"
    p.write_bytes(content)
    with pytest.raises(InvalidModelError) as e:
        read_model(p)
    msg = str(e.value)
    assert str(p) in msg and '"TFL3"' in msg and found in msg
    with pytest.raises(InvalidModelError):
        is_compiled(p)


def test_missing_path_and_directory_and_wrong_type(tmp_path):
    with pytest.raises(InvalidModelError, match="no such file"):
        read_model(tmp_path / "nope.tflite")
    with pytest.raises(InvalidModelError, match="directory"):
        read_model(tmp_path)
    with pytest.raises(InvalidModelError, match="got int"):
        read_model(42)


def test_truncated_models_raise_invalid_model_never_a_raw_error(tflite_model):
    data = tflite_model("tiny_int8").read_bytes()
    cuts = sorted({8, 12, 16, 32, 64, 100, 200, len(data) // 3, len(data) // 2, len(data) - 700, len(data) - 40})
    for n in cuts:
        with pytest.raises(InvalidModelError) as e:
            read_model(data[:n])
        assert "TFL3" in str(e.value) or "truncated" in str(e.value) or "corrupt" in str(e.value)


def test_random_bytes_behind_a_valid_identifier_raise_invalid_model():
    rng = np.random.default_rng(7)
    for _ in range(20):
        body = bytearray(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
        body[4:8] = b"TFL3"
        try:
            read_model(bytes(body))
        except InvalidModelError:
            pass  # the expected outcome; anything else propagates and fails the test


def test_mobilenet_v2_224_parses_fast(tflite_model):
    data = tflite_model("mobilenet_v2_224").read_bytes()
    assert len(data) > 3_000_000
    t = time.perf_counter()
    m = read_model(data)
    dt = time.perf_counter() - t
    assert len(m.main.operators) > 60
    assert dt < 0.5, f"parsing took {dt:.3f} s"


def test_edgetpu_package_never_imports_tensorflow_keras_or_keras_compress(tmp_path):
    data = conv_chain(2).build()
    p = tmp_path / "m.tflite"
    p.write_bytes(data)
    code = (
        "import sys, edgetpu, edgetpu.model, edgetpu.compat, edgetpu.compiler, edgetpu.delegate\n"
        f"r = edgetpu.check({str(p)!r}); assert r.status == 0, r.status\n"
        "bad = [m for m in ('tensorflow', 'keras', 'keras_compress') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
