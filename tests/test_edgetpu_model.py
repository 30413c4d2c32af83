"""edgetpu.model: reading .tflite flatbuffers without TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

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


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_behind_a_valid_identifier_raise_invalid_model(seed):
    body = bytearray(np.random.default_rng(seed).integers(0, 256, 512, dtype=np.uint8).tobytes())
    body[4:8] = b"TFL3"
    with pytest.raises(InvalidModelError, match=r"<bytes>: (corrupt TFLite flatbuffer|TFLite model has no subgraph)"):
        read_model(bytes(body))


@pytest.mark.parametrize("offset, what", [(0, "root offset"), (4, "vtable of root table")])
def test_offsets_pointing_outside_the_file_are_named(offset, what):
    data = bytearray(conv_chain(1).build())
    data[0:4] = (len(data) + 100).to_bytes(4, "little") if offset == 0 else data[0:4]
    if offset:
        root = int.from_bytes(data[0:4], "little")
        data[root : root + 4] = (-(2**30)).to_bytes(4, "little", signed=True)  # vtable far past the end
    with pytest.raises(InvalidModelError, match="outside the buffer"):
        read_model(bytes(data))


def test_strings_must_be_utf8_and_vectors_must_fit():
    g = conv_chain(1)
    g.tensors[0].name = "@@@@"
    data = g.build().replace(b"@@@@", b"\xff\xfe\xfd\xfc")
    with pytest.raises(InvalidModelError, match=r"name of tensor 0 is not valid UTF-8"):
        read_model(data)


def test_mobilenet_v2_224_reads_all_ops_tensors_and_weights(tflite_model):
    m = read_model(tflite_model("mobilenet_v2_224"))
    assert m.size_bytes > 3_000_000 and len(m.main.operators) == 65 and len(m.main.tensors) > 170
    weights = [t for t in m.main.tensors if t.is_constant]
    assert sum(t.buffer_bytes for t in weights) > 3_000_000
    assert all(t.nbytes == t.buffer_bytes for t in weights)  # every constant's buffer matches its shape and type


def test_edgetpu_package_never_imports_tensorflow_keras_or_keras_compress(tmp_path):
    data = conv_chain(2).build()
    p = tmp_path / "m.tflite"
    p.write_bytes(data)
    code = (
        "import sys, edgetpu, edgetpu.model, edgetpu.compat, edgetpu.compiler, edgetpu.delegate, edgetpu.validation\n"
        f"r = edgetpu.check({str(p)!r}); assert r.status == 0, r.status\n"
        "bad = [m for m in ('tensorflow', 'keras', 'keras_compress') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
