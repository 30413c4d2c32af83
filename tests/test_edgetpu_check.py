"""edgetpu.check: the Edge TPU compatibility prediction, on real conversions and hand-built rule cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes.tflite_builder import (
    Graph,
    bidirectional_lstm,
    compiled_model,
    conv_chain,
    int8_lstm,
    movenet_style,
    resize_model,
)

import edgetpu
from edgetpu.cli import main as cli_main
from edgetpu.compat import (
    COMPILER_TFLITE_RUNTIME,
    OP_VERSION_FIRST_RELEASE,
    check,
    first_release,
)

# ----------------------------------------------------------------- the "Done when"


@pytest.mark.parametrize("name", ["mobilenet_v2_224", "mobilenet_v1_style", "resnet_style"])
def test_edgetpu_conversions_map_fully_without_warnings(tflite_model, name):
    """(How long check takes is measured in bench/bench_check.py, not asserted here.)"""
    r = check(tflite_model(name))
    assert r.status == 0 and r.exit_code == 0, r.format_table()
    assert r.fraction_mapped == 1.0 and r.cut_index is None
    assert r.warnings == []
    assert all(op.mapped for op in r.ops)
    assert r.fits_on_chip and r.parameter_bytes > 0


def test_mobilenet_v2_parameters_are_its_int8_weights(tflite_model):
    r = check(tflite_model("mobilenet_v2_224"))
    # ~3.5 M parameters, int8: 3.3-3.8 MB including int32 biases; fits the ~8 MB cache.
    assert 3_000_000 < r.parameter_bytes < 4_000_000
    assert r.fits_on_chip


def test_mobilenet_v3_small_names_hard_swish_its_index_and_the_cut(tflite_model):
    r = check(tflite_model("mobilenet_v3_small"))
    assert r.status == 1
    cut = r.ops[r.cut_index]
    assert cut.op == "HARD_SWISH" and not cut.mapped
    assert r.cut_op == "HARD_SWISH"
    assert "minimalistic=True" in cut.reason
    assert all(op.mapped for op in r.ops[: r.cut_index])
    assert all(not op.mapped and op.reason.startswith(f"after the cut at op #{r.cut_index}") for op in r.ops[r.cut_index + 1:])
    assert 0 < r.fraction_mapped < 0.1
    table = r.format_table()
    assert f"Cut at op #{r.cut_index} (HARD_SWISH)" in table


def test_leaky_relu_names_the_op_index_and_cut(tflite_model):
    r = check(tflite_model("leaky_relu"))
    assert r.status == 1
    ops = [o.op for o in r.ops]
    idx = ops.index("LEAKY_RELU")
    assert r.cut_index == idx
    assert "LEAKY_RELU: Operation not supported" in r.ops[idx].reason
    assert "PReLU" in r.ops[idx].reason
    assert r.ops[idx + 1].op == "CONV_2D" and not r.ops[idx + 1].mapped  # supported, but after the cut
    assert r.ops[idx + 1].problems == []


def test_float_model_says_why_it_cannot_compile(tflite_model):
    r = check(tflite_model("tiny_float"))
    assert r.status == 2
    assert r.fraction_mapped == 0.0 and r.cut_index == 0
    assert "float32" in r.ops[0].reason and "not quantized" in r.ops[0].reason
    assert any("Model not quantized" in w and 'target="edgetpu"' in w for w in r.warnings)
    assert "not quantized" in r.verdict


def test_dynamic_batch_warns_and_says_how_to_fix(tflite_model):
    r = check(tflite_model("tiny_dynamic_batch"))
    (w,) = [w for w in r.warnings if "dynamic batch" in w]
    assert "shape_signature -1" in w and 'to_tflite(model, target="edgetpu")' in w and "static batch of 1" in w
    assert r.status == 0  # the batch alone does not stop the ops from mapping


def test_float_io_quantize_and_dequantize_run_on_cpu_without_cutting(tflite_model):
    r = check(tflite_model("tiny_float_io"))
    assert r.ops[0].op == "QUANTIZE" and r.ops[0].boundary and not r.ops[0].mapped
    assert r.ops[-1].op == "DEQUANTIZE" and r.ops[-1].boundary and not r.ops[-1].mapped
    assert r.cut_index is None and r.status == 0 and r.fraction_mapped == 1.0
    assert all(o.mapped for o in r.ops[1:-1])


def test_uint8_io_model_maps_fully(tflite_model):
    r = check(tflite_model("tiny_uint8"))
    assert r.status == 0, r.format_table()


# ----------------------------------------------------------------- rules, on hand-built models


def _single(op, in_shape, out_shape, *, version=1, dtype="int8", extra_inputs=(), out_dtype=None, **opts):
    g = Graph()
    x = g.tensor("x", dtype, in_shape, input=True)
    ins = [x] + [g.const(f"c{i}", v, dt) for i, (v, dt) in enumerate(extra_inputs)]
    y = g.tensor("y", out_dtype or dtype, out_shape, output=True)
    g.op(op, ins, [y], version=version, **opts)
    return g.build()


def _reason(data):
    r = check(data)
    return r, r.ops[0].reason


def test_conv2d_version_6_is_newer_than_the_compiler_accepts_and_refuses_the_model():
    r = check(conv_chain(2, conv_version=6).build())
    assert r.status == 2 and r.cut_index == 0
    assert "CONV_2D version 6" in r.ops[0].reason and "2.9.0" in r.ops[0].reason
    assert "Didn't find op for builtin opcode 'CONV_2D' version '6'" in r.ops[0].reason
    assert any("refuse the whole model" in w for w in r.warnings)
    ok = check(conv_chain(2, conv_version=5).build())
    assert ok.status == 0  # CONV_2D v5 first appeared in 2.4.0


def test_op_version_after_the_cut_still_refuses_the_whole_model():
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    y = g.tensor("y", "int8", [1, 8, 8, 4])
    z = g.tensor("z", "int8", [1, 8, 8, 4], output=True)
    g.op("HARD_SWISH", [x], [y])
    g.op("QUANTIZE", [y], [z], version=3)  # first in 2.7.0 (edgetpu#879)
    r = check(g.build())
    assert r.cut_index == 0 and r.status == 2
    assert "QUANTIZE version 3" in r.ops[1].reason


def test_runtime_version_table_facts():
    assert OP_VERSION_FIRST_RELEASE["CONV_2D"][5] == "2.4.0"
    assert OP_VERSION_FIRST_RELEASE["CONV_2D"][6] == "2.9.0"
    assert OP_VERSION_FIRST_RELEASE["ADD"][4] == "2.6.0"
    assert first_release("QUANTIZE", 3) == "2.7.0"
    assert first_release("CONV_2D", 99).startswith(">")
    assert first_release("NOT_AN_OP", 1) is None
    assert COMPILER_TFLITE_RUNTIME == "2.6.0"


def test_min_runtime_version_metadata_newer_than_the_compiler_warns():
    g = conv_chain(1)
    g.metadata["min_runtime_version"] = b"2.9.0" + b"\0" * 11
    r = check(g.build())
    assert r.min_runtime_version == "2.9.0"
    assert any("min_runtime_version 2.9.0" in w for w in r.warnings)
    g2 = conv_chain(1)
    g2.metadata["min_runtime_version"] = b"1.14.0" + b"\0" * 10
    assert check(g2.build()).warnings == []


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
def test_fused_activation_on_pooling_does_not_map(op):
    r, reason = _reason(_single(op, [1, 8, 8, 4], [1, 4, 4, 4], fusedActivationFunction=1))
    assert r.status == 2 and "fused activation (RELU)" in reason
    assert check(_single(op, [1, 8, 8, 4], [1, 4, 4, 4])).status == 0


def test_unequal_dilation_does_not_map():
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    w = g.tensor("w", "int8", [4, 3, 3, 4], data=np.ones((4, 3, 3, 4)))
    b = g.tensor("b", "int32", [4], data=np.zeros(4))
    y = g.tensor("y", "int8", [1, 8, 8, 4], output=True)
    g.op("DEPTHWISE_CONV_2D", [x, w, b], [y], version=2, dilationWFactor=2, dilationHFactor=1)
    r, reason = _reason(g.build())
    assert r.status == 2 and "unequal dilation (x 2, y 1)" in reason


def test_strided_slice_strides_and_masks():
    consts = [([0, 0, 0, 0], "int32"), ([1, 8, 8, 4], "int32")]
    _, reason = _reason(_single("STRIDED_SLICE", [1, 8, 8, 4], [1, 4, 8, 4], extra_inputs=consts + [([1, 2, 1, 1], "int32")]))
    assert "strides [1, 2, 1, 1]" in reason
    _, reason = _reason(_single("STRIDED_SLICE", [1, 8, 8, 4], [1, 8, 8, 4], extra_inputs=consts + [([1, 1, 1, 1], "int32")],
                                ellipsisMask=1))
    assert "ellipsis_mask" in reason
    ok = check(_single("STRIDED_SLICE", [1, 8, 8, 4], [1, 4, 8, 4], extra_inputs=consts + [([1, 1, 1, 1], "int32")]))
    assert ok.status == 0


def test_softmax_limits():
    _, reason = _reason(_single("SOFTMAX", [1, 16001], [1, 16001]))
    assert "16001 elements" in reason and "16000" in reason
    _, reason = _reason(_single("SOFTMAX", [1, 7, 10], [1, 7, 10]))
    assert "not 1-D" in reason
    assert check(_single("SOFTMAX", [1, 16000], [1, 16000])).status == 0


def test_rank_rule_only_three_innermost_dims_may_exceed_one():
    _, reason = _reason(_single("RELU", [2, 8, 8, 4], [2, 8, 8, 4]))
    assert "Tensor has unsupported rank" in reason
    _, reason = _reason(_single("RELU", [1, 3, 8, 8, 4], [1, 3, 8, 8, 4]))
    assert "unsupported rank" in reason
    assert check(_single("RELU", [1, 1, 8, 8, 4], [1, 1, 8, 8, 4])).status == 0


@pytest.mark.parametrize("dtype, word", [("int16", "16-bit activations"), ("float32", "not quantized"), ("int32", "unsupported data type")])
def test_non_8bit_activations_do_not_map(dtype, word):
    r, reason = _reason(_single("RELU", [1, 8, 8, 4], [1, 8, 8, 4], dtype=dtype))
    assert r.status == 2 and word in reason and dtype in reason


def test_uint8_tensors_map():
    assert check(_single("RELU", [1, 8, 8, 4], [1, 8, 8, 4], dtype="uint8")).status == 0


def test_dynamic_non_batch_dimension_does_not_map():
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], signature=[1, -1, 8, 4], input=True)
    y = g.tensor("y", "int8", [1, 8, 8, 4], signature=[1, -1, 8, 4], output=True)
    g.op("RELU", [x], [y])
    r, reason = _reason(g.build())
    assert "dynamic shape" in reason and r.status == 2


def test_reductions_and_padding_along_batch_do_not_map():
    _, reason = _reason(_single("MEAN", [1, 8, 8, 4], [8, 8, 4], extra_inputs=[([0], "int32")]))
    assert "batch" in reason
    assert check(_single("MEAN", [1, 8, 8, 4], [1, 4], extra_inputs=[([1, 2], "int32")])).status == 0
    _, reason = _reason(_single("PAD", [1, 8, 8, 4], [3, 8, 8, 4], extra_inputs=[([[1, 1], [0, 0], [0, 0], [0, 0]], "int32")]))
    assert "PAD pads the batch" in reason
    assert check(_single("PAD", [1, 8, 8, 4], [1, 10, 10, 4], extra_inputs=[([[0, 0], [1, 1], [1, 1], [0, 0]], "int32")])).status == 0


def test_concatenation_with_non_zero_constant_does_not_map():
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    c = g.tensor("c", "int8", [1, 8, 8, 4], data=np.ones((1, 8, 8, 4)))
    y = g.tensor("y", "int8", [1, 8, 8, 8], output=True)
    g.op("CONCATENATION", [x, c], [y])
    _, reason = _reason(g.build())
    assert "not all zeros" in reason
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    c = g.tensor("c", "int8", [1, 8, 8, 4], data=np.zeros((1, 8, 8, 4)))
    y = g.tensor("y", "int8", [1, 8, 8, 8], output=True)
    g.op("CONCATENATION", [x, c], [y])
    assert check(g.build()).status == 0


def test_fully_connected_with_more_than_1d_output_does_not_map():
    g = Graph()
    x = g.tensor("x", "int8", [1, 5, 8], input=True)
    w = g.tensor("w", "int8", [10, 8], data=np.ones((10, 8)))
    y = g.tensor("y", "int8", [1, 5, 10], output=True)
    g.op("FULLY_CONNECTED", [x, w, -1], [y], version=4, keepNumDims=True)
    _, reason = _reason(g.build())
    assert "not 1-D" in reason


def test_unsupported_custom_op_and_already_compiled_model():
    r, reason = _reason(_single("custom:MyOp", [1, 4], [1, 4]))
    assert "custom op 'MyOp'" in reason and r.status == 2
    c = check(compiled_model())
    assert c.ops[0].mapped and "already compiled" in c.ops[0].reason
    assert any("already compiled" in w for w in c.warnings)


def test_parameters_that_do_not_fit_on_chip_warn():
    g = Graph()
    x = g.tensor("x", "int8", [1, 3000], input=True)
    w = g.tensor("w", "int8", [3000, 3000], data=np.ones((3000, 3000)))
    y = g.tensor("y", "int8", [1, 3000], output=True)
    g.op("FULLY_CONNECTED", [x, w, -1], [y], version=4)
    r = check(g.build())
    assert r.status == 0 and r.parameter_bytes == 9_000_000 and not r.fits_on_chip
    assert any("on-chip cache" in w and "num_segments" in w for w in r.warnings)


# ----------------------------------------------------------------- output forms and CLI


def test_to_dict_is_json_and_table_is_readable(tflite_model):
    r = edgetpu.check(tflite_model("leaky_relu"))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["status"] == 1 and d["cut_index"] == r.cut_index and d["cut_op"] == "LEAKY_RELU"
    first = d["ops"][0]
    assert {"index", "op", "version", "input_dtypes", "input_shapes", "output_dtypes", "output_shapes", "mapped", "reason"} <= set(first)
    table = r.format_table()
    assert "LEAKY_RELU" in table and "TPU" in table and "CPU" in table and "Verdict: partly mappable" in table


def test_cli_check_exit_codes_and_json(tflite_model, tmp_path, capsys):
    assert cli_main(["check", str(tflite_model("mobilenet_v1_style"))]) == 0
    assert "fully mappable" in capsys.readouterr().out
    assert cli_main(["check", str(tflite_model("leaky_relu")), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["cut_op"] == "LEAKY_RELU"
    assert cli_main(["check", str(tflite_model("tiny_float"))]) == 3  # unusable on the TPU (2 is bad input)
    capsys.readouterr()
    png = tmp_path / "cat.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert cli_main(["check", str(png)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and "PNG image" in err[0] and "Traceback" not in cap.err
    assert cli_main(["check", str(tmp_path / "missing.tflite")]) == 2
    assert "no such file" in capsys.readouterr().err



# ----------------------------------------------------------------- issue 12: what compiler 16 really does


def test_movenet_style_prefix_of_two_on_cpu_body_on_tpu_post_processing_on_cpu():
    data, parts = movenet_style()
    r = check(data)
    table = r.format_table()
    assert [o.index for o in r.ops if o.part == "prefix"] == parts["prefix"] == [0, 1], table
    assert [o.op for o in r.ops if o.part == "prefix"] == ["CAST", "QUANTIZE"]
    assert [o.index for o in r.ops if o.part == "tpu"] == parts["tpu"]
    assert [o.index for o in r.ops if o.part == "cpu"] == parts["cpu"]
    assert all(o.mapped == (o.part == "tpu") and not o.boundary for o in r.ops)
    n_tpu, n_all = len(parts["tpu"]), len(r.ops)
    assert (r.status, r.exit_code, r.ops_on_tpu, r.ops_before, r.ops_after) == (1, 1, n_tpu, 2, len(parts["cpu"]))
    assert r.fraction_mapped == pytest.approx(n_tpu / n_all)
    assert r.verdict.startswith(f"partly mappable: {n_tpu}/{n_all} ops on the Edge TPU; 2 before it on the CPU, "
                                f"{len(parts['cpu'])} after it on the CPU, from op #{parts['cpu'][0]} (ARG_MAX)")
    assert r.cut_index == parts["cpu"][0] and r.cut_op == "ARG_MAX"
    # The body's 2x resize maps without a warning; the segment hands 4 tensors to the CPU (heads + center).
    assert "scale 2x2" in r.ops[6].reason and not any("RESIZE" in w for w in r.warnings)
    assert r.segment_outputs == 4
    # Every op keeps its reason: the prefix says why it cannot map, the supported int8 ADD after the
    # cut says what it depends on, the table shows the three parts.
    assert "CAST: Operation not supported" in r.ops[0].reason and "float32" in r.ops[1].reason
    add = next(o for o in r.ops if o.op == "ADD" and o.part == "cpu")
    assert add.problems == [] and add.reason == "after the cut at op #17 (ARG_MAX): runs on the CPU"
    for line in ("CPU before the Edge TPU segment: 2 op(s) (#0 CAST, #1 QUANTIZE)",
                 f"Edge TPU segment: {n_tpu} op(s)", f"CPU after the Edge TPU segment: {len(parts['cpu'])} op(s)"):
        assert line in table
    assert "CPU (before)" in table


def test_prefix_alone_is_partly_mappable_without_a_cut():
    g = Graph()
    x = g.tensor("x", "uint8", [1, 8, 8, 4], input=True)
    f = g.tensor("f", "float32", [1, 8, 8, 4])
    g.op("CAST", [x], [f])
    q = g.tensor("q", "int8", [1, 8, 8, 4])
    g.op("QUANTIZE", [f], [q])
    y = g.tensor("y", "int8", [1, 8, 8, 4], output=True)
    g.op("RELU", [q], [y])
    r = check(g.build())
    assert [o.part for o in r.ops] == ["prefix", "prefix", "tpu"]
    assert r.status == 1 and r.cut_index is None and r.verdict.endswith("2 before it on the CPU")


def test_independent_branch_after_the_cut_stays_on_the_tpu():
    """Data flow, not op order: a mappable op after the cut that does not depend on it still maps."""
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    a = g.tensor("a", "int8", [1, 8, 8, 4])
    g.op("RELU", [x], [a])
    b = g.tensor("b", "int8", [1, 8, 8, 4], output=True)
    g.op("HARD_SWISH", [a], [b])
    c = g.tensor("c", "int8", [1, 8, 8, 4], output=True)
    g.op("RELU6", [a], [c])
    r = check(g.build())
    assert [o.part for o in r.ops] == ["tpu", "cpu", "tpu"] and r.cut_index == 1
    assert r.ops_on_tpu == 2 and r.segment_outputs == 2


def test_int8_lstm_maps_fully_with_int16_state_inside():
    data = int8_lstm()
    r = check(data)
    assert [o.op for o in r.ops] == ["QUANTIZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "RESHAPE", "FULLY_CONNECTED",
                                     "SOFTMAX", "QUANTIZE"]
    assert r.status == 0 and r.fraction_mapped == 1.0 and r.ops_on_tpu == 6, r.format_table()
    assert r.warnings == []
    assert "input feature size 28" in r.ops[1].reason
    from edgetpu.model import read_model

    sg = read_model(data).main
    lstm = sg.operators[1]
    assert {sg.tensors[i].dtype for i in lstm.intermediates} == {"int16", "int8"}
    assert [sg.tensors[i].dtype for i in lstm.inputs if i >= 0 and sg.tensors[i].is_variable] == ["int8", "int16"]


def test_int16_activations_outside_an_lstm_still_do_not_map():
    g = Graph()
    x = g.tensor("x", "int16", [1, 8, 8, 4], input=True, variable=False)
    y = g.tensor("y", "int16", [1, 8, 8, 4], output=True)
    g.op("RELU", [x], [y])
    assert "16-bit activations" in check(g.build()).ops[0].reason


def test_lstm_with_about_a_thousand_input_features_is_a_named_risk():
    r = check(int8_lstm(steps=4, features=1000, units=8))
    assert r.status == 0  # predicted mapped, but the known limit is named
    (w,) = [w for w in r.warnings if "UNIDIRECTIONAL_SEQUENCE_LSTM" in w]
    assert "input feature size of 1000" in w and "#598" in w
    assert "risk:" in r.ops[1].reason


def test_bidirectional_lstm_is_refused_with_the_reason():
    r = check(bidirectional_lstm())
    assert r.status == 2 and not r.ops[0].mapped
    assert "BIDIRECTIONAL_SEQUENCE_LSTM: Operation not supported" in r.ops[0].reason
    assert "unidirectional" in r.ops[0].reason


@pytest.mark.parametrize("in_hw, out_hw, warned", [((1, 1), (33, 33), True), ((6, 6), (12, 12), False),
                                                   ((12, 12), (24, 24), False), ((8, 8), (24, 24), True),
                                                   ((10, 10), (15, 15), True)])
@pytest.mark.parametrize("op", ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
def test_resize_reports_its_scale_and_warns_where_precision_may_keep_it_on_cpu(in_hw, out_hw, warned, op):
    r = check(resize_model(in_hw, out_hw, op=op))
    sh, sw = out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]
    assert f"{in_hw[0]}x{in_hw[1]} -> {out_hw[0]}x{out_hw[1]}, scale {sh:g}x{sw:g}" in r.ops[0].reason
    assert r.ops[0].mapped and r.status == 0
    resize_warnings = [w for w in r.warnings if op in w]
    assert bool(resize_warnings) == warned
    if warned:
        assert f"scale {sh:g}x{sw:g}" in resize_warnings[0] and "precision" in resize_warnings[0]


# ----------------------------------------------------------------- runtime-version guard


def test_runtime_guard_names_op_version_and_first_runtime(tflite_model):
    g = conv_chain(1)
    x = g.tensor("flat", "int8", [1, 256])
    g.op("RESHAPE", [g.outputs[0], g.const("shape", [1, 256])], [x])
    w = g.tensor("fc/w", "int8", [10, 256], data=np.ones((10, 256)))
    y = g.tensor("fc", "int8", [1, 10], output=True)
    g.op("FULLY_CONNECTED", [x, w, -1], [y], version=12)
    g.outputs = [y]
    r = check(g.build(), runtime="2.14")
    (c,) = r.runtime_conflicts
    assert (c.index, c.op, c.version, c.first_release) == (2, "FULLY_CONNECTED", 12, "2.17.0")
    assert r.exit_code == 4 and r.required_runtime == "2.17.0"
    (w,) = [w for w in r.warnings if w.startswith("TF Lite runtime 2.14")]
    assert "FULLY_CONNECTED version 12 needs TF Lite 2.17.0" in w
    assert check(g.build(), runtime="2.17").runtime_conflicts == []
    assert check(g.build()).runtime_conflicts == [] and check(g.build()).exit_code != 4


def test_ops_newer_than_and_required_runtime_are_public():
    from edgetpu.runtime_versions import first_release as fr

    assert edgetpu.required_runtime(conv_chain(1, conv_version=6).build()) == "2.9.0"
    (c,) = edgetpu.ops_newer_than(conv_chain(1, conv_version=6).build(), "2.8")
    assert (c.op, c.version, c.first_release) == ("CONV_2D", 6, "2.9.0")
    assert edgetpu.ops_newer_than(conv_chain(1, conv_version=6).build(), "2.9.0") == []
    # Facts checked against TensorFlow's runtime_version.cc (tensorflow/compiler/mlir/lite/tools/versioning).
    assert (fr("FULLY_CONNECTED", 12), fr("FULLY_CONNECTED", 11), fr("QUANTIZE", 3)) == ("2.17.0", "2.15.0", "2.7.0")
    assert (fr("UNIDIRECTIONAL_SEQUENCE_LSTM", 4), fr("TRANSPOSE", 7), fr("BROADCAST_TO", 1)) == ("2.12.0", "2.14.4",
                                                                                               None)
    with pytest.raises(edgetpu.VersionError, match="'two'"):
        edgetpu.ops_newer_than(conv_chain(1).build(), "two")


@pytest.fixture(scope="module")
def dynamic_range_model():
    """to_tflite(quantization="dynamic") of the digits CNN (its Dense kernel is large enough to be quantized)."""
    import keras

    from keras_compress.convert import to_tflite

    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([keras.Input((32, 32, 1)), L.Conv2D(16, 3, activation="relu", padding="same"),
                              L.MaxPooling2D(), L.Conv2D(32, 3, activation="relu", padding="same"), L.MaxPooling2D(),
                              L.Flatten(), L.Dense(10)])
    return to_tflite(model, quantization="dynamic", verbose=False)


def test_cli_runtime_2_14_flags_fully_connected_v12_of_a_dynamic_range_model(dynamic_range_model, tmp_path, capsys):
    p = tmp_path / "dynamic.tflite"
    p.write_bytes(dynamic_range_model)
    assert cli_main(["check", str(p), "--runtime", "2.14"]) == 4
    out = capsys.readouterr().out
    assert "FULLY_CONNECTED version 12 needs TF Lite 2.17.0" in out and "runtime 2.14" in out
    assert cli_main(["check", str(p), "--runtime", "2.17", "--json"]) == 3  # runs there; still float for the TPU
    assert json.loads(capsys.readouterr().out)["runtime_conflicts"] == []
    assert cli_main(["check", str(p), "--runtime", "latest"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'latest'" in err[0]


def test_cli_help_documents_the_exit_codes(capsys):
    assert cli_main(["check", "--help"]) == 0  # main() returns argparse's status instead of raising SystemExit
    out = " ".join(capsys.readouterr().out.split())
    for code, meaning in ((0, "every op maps"), (1, "some ops map"), (2, "bad input"), (3, "nothing maps"),
                          (4, "with --runtime: some op needs a newer TF Lite runtime")):
        assert f"{code} {meaning}" in out


# ----------------------------------------------------------------- no ai_edge_litert, no TensorFlow


def test_check_runs_where_ai_edge_litert_and_tensorflow_cannot_be_imported(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "lstm.tflite"
    p.write_bytes(int8_lstm())
    code = (
        "import sys\n"
        "for name in ('ai_edge_litert', 'tensorflow', 'tflite_runtime', 'flatbuffers', 'keras'):\n"
        "    sys.modules[name] = None  # any import of these (or their submodules) now fails\n"
        "from edgetpu.cli import main\n"
        f"rc = main(['check', {str(p)!r}, '--runtime', '2.14'])\n"
        "import edgetpu\n"
        f"assert edgetpu.check({str(p)!r}).fully_mapped\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('ai_edge_litert', 'tensorflow', 'flatbuffers'))\n"
        "print('LOADED', [m for m in loaded if sys.modules[m] is not None])\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fully mappable" in out.stdout and "LOADED []" in out.stdout
