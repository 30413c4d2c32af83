"""edgetpu.validate (edgetpu/validation.py): models the interpreter would crash or fail on are refused, sound ones pass (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import crashers
from fakes.tflite_builder import (
    Graph,
    conv_chain,
    int8_lstm,
    movenet_style,
    resize_model,
)

import edgetpu
from edgetpu.cli import main as cli_main
from edgetpu.errors import InvalidModelError, MalformedModelError
from edgetpu.validation import validate

CRASHERS = list(crashers.EXPECTED)


@pytest.mark.parametrize("build", CRASHERS, ids=lambda f: f.__name__)
def test_every_crasher_of_the_issue_is_refused_by_validate_check_and_make_interpreter(build, tmp_path):
    path = tmp_path / f"{build.__name__}.tflite"
    path.write_bytes(build())
    phrase = crashers.EXPECTED[build]
    for call in (validate, edgetpu.check, edgetpu.make_interpreter):
        with pytest.raises(InvalidModelError) as e:
            call(path)
        assert str(path) in str(e.value) and phrase in str(e.value), (call.__name__, str(e.value))


@pytest.mark.parametrize("build", CRASHERS, ids=lambda f: f.__name__)
def test_cli_check_reports_a_crasher_as_bad_input_in_one_line(build, tmp_path, capsys):
    path = tmp_path / "m.tflite"
    path.write_bytes(build())
    assert cli_main(["check", str(path)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert cap.out == "" and len(err) == 1 and str(path) in err[0] and "Traceback" not in cap.err


def test_malformed_model_error_carries_its_fields():
    with pytest.raises(MalformedModelError) as e:
        validate(crashers.stride_zero(), name="conv.tflite")
    err = e.value
    assert (err.source, err.where, err.expected, err.found) == ("conv.tflite", "op #0 (CONV_2D)", "strideW >= 1",
                                                                 "strideW 0")
    assert str(err) == "conv.tflite: invalid model: op #0 (CONV_2D): expected strideW >= 1, found strideW 0"


def test_duplicated_operator_names_the_tensor_produced_twice():
    with pytest.raises(MalformedModelError, match=r"op #1 \(CONV_2D\) output tensor 3 'conv0'.*already produced"):
        validate(crashers.duplicated_operator())


def test_omitted_filter_is_refused_but_an_omitted_bias_is_fine():
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    w = g.tensor("w", "int8", [4, 3, 3, 4], data=np.ones((4, 3, 3, 4)))
    y = g.tensor("y", "int8", [1, 8, 8, 4], output=True)
    g.op("CONV_2D", [x, w, -1], [y], version=3)
    validate(g.build())
    g.ops[0] = (g.ops[0][0], [x, -1, -1], [y], g.ops[0][3])
    with pytest.raises(MalformedModelError, match="input 1 present"):
        validate(g.build())


@pytest.mark.parametrize("name", ["mobilenet_v2_224", "mobilenet_v3_small", "leaky_relu", "tiny_int8", "tiny_uint8",
                                  "tiny_float_io", "tiny_float", "tiny_dynamic_batch"])
def test_converted_models_are_valid(tflite_model, name):
    assert validate(tflite_model(name)).main.operators


@pytest.mark.parametrize("data", [conv_chain(3).build(), conv_chain(2, dtype="float32").build(), int8_lstm(),
                                  movenet_style()[0], resize_model((1, 1), (33, 33))],
                         ids=["int8_chain", "float_chain", "int8_lstm", "movenet_style", "resize"])
def test_hand_built_models_are_valid_and_run(data):
    interpreter = edgetpu.make_interpreter(data, num_threads=1)
    xs = [np.zeros((1, *d["shape"][1:]), np.float32) for d in interpreter.get_input_details()]
    out = edgetpu.run(interpreter, xs[0])
    assert np.all(np.isfinite(out if isinstance(out, np.ndarray) else out[0]))


def test_activation_memory_comes_from_the_real_tensor_sizes():
    g = Graph()
    x = g.tensor("x", "int8", [1, 64, 64, 4], input=True)
    big = g.tensor("big", "int8", [1, 2048, 2048, 4])
    g.op("RESIZE_NEAREST_NEIGHBOR", [x, g.const("size", [2048, 2048])], [big], version=3)
    y = g.tensor("y", "int8", [1, 2048, 2048, 4], output=True)
    g.op("RELU", [big], [y])
    r = edgetpu.check(g.build())
    assert r.largest_activation == {"name": "big", "shape": [1, 2048, 2048, 4], "bytes": 16 * 2**20}
    assert r.activation_peak_bytes == 2 * 16 * 2**20  # big and y (x is dead once the resize ran)
    assert "Activations: peak 32.00 MiB" in r.format_table()
    assert any("'big'" in w and "16.0 MiB" in w and "large activation tensors" in w for w in r.warnings)
    small = edgetpu.check(conv_chain(2).build())
    assert small.largest_activation["bytes"] == 256 and not any("activation" in w for w in small.warnings)


def test_an_intermediate_of_an_op_cannot_be_a_model_input_and_io_needs_a_batch_axis():
    g = Graph()
    x = g.tensor("x", "int8", [1, 8], input=True)
    scratch = g.tensor("scratch", "int16", [], input=True)
    y = g.tensor("y", "int8", [1, 8], output=True)
    g.op("RELU", [x], [y], intermediates=[scratch])
    with pytest.raises(MalformedModelError, match="model input tensor 1 'scratch': expected a batch-first tensor"):
        validate(g.build())
    g.tensors[scratch].shape = np.array([1, 4], dtype=np.int32)
    with pytest.raises(MalformedModelError, match=r"op #0 \(RELU\) intermediate tensor 1 'scratch'.*a model input"):
        validate(g.build())


def test_a_reshape_to_a_consistent_constant_shape_is_fine():
    g = Graph()
    x = g.tensor("x", "int8", [1, 4, 4, 2], input=True)
    y = g.tensor("y", "int8", [1, 32], output=True)
    shape = g.const("shape", [1, -1])
    g.op("RESHAPE", [x, shape], [y])
    validate(g.build())
    g.buffers[g.tensors[shape].buffer].data = np.frombuffer(np.array([1, 33], np.int32).tobytes(), np.uint8)
    with pytest.raises(MalformedModelError, match="holding the input's 32 elements"):
        validate(g.build())


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8", "int16x8"])
def test_every_conversion_mode_of_to_tflite_is_valid(small_tflite, mode):
    """No false alarm on what the converter writes: float, float16 weights, hybrid, full int8, int16 activations."""
    m = validate(small_tflite[mode], name=f"small_cnn_{mode}.tflite")
    assert m.main.operators and edgetpu.make_interpreter(small_tflite[mode], num_threads=1)
