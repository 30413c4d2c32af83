"""Answers `edgetpu.check` gave before the data-flow partition (issue 12), pinned so they never drift.

Each row was recorded with the op-order partition on TF 2.21 conversions of the
fixture models (``tests/fakes/fixtures.py``): verdict status, how many ops, how
many map, the float-I/O boundary ops, the cut, the mapped fraction, the cached
parameter bytes, the op versions and the runtime they need. The data-flow
partition must reproduce every one of them: these models have no CPU prefix, so
both readings of the compiler agree.
"""

from __future__ import annotations

import collections

import pytest

from edgetpu.compat import check

# name: (status, ops, on TPU, boundary, cut index, cut op, fraction, parameter bytes, required runtime,
#        {(op, version): count}, warnings (first words))
PINNED = {
    "mobilenet_v2_224": (0, 65, 65, 0, None, None, 1.0, 3486760, "1.14.0",
                         {("ADD", 2): 10, ("CONV_2D", 3): 35, ("DEPTHWISE_CONV_2D", 3): 17, ("FULLY_CONNECTED", 4): 1,
                          ("MEAN", 2): 1, ("SOFTMAX", 2): 1}, []),
    "mobilenet_v1_style": (0, 12, 12, 0, None, None, 1.0, 19112, "1.14.0",
                           {("CONV_2D", 3): 5, ("DEPTHWISE_CONV_2D", 3): 4, ("FULLY_CONNECTED", 4): 1, ("MEAN", 2): 1,
                            ("SOFTMAX", 2): 1}, []),
    "resnet_style": (0, 12, 12, 0, None, None, 1.0, 19896, "1.14.0",
                     {("ADD", 2): 2, ("CONV_2D", 3): 6, ("FULLY_CONNECTED", 4): 1, ("MAX_POOL_2D", 2): 1, ("MEAN", 2): 1,
                      ("SOFTMAX", 2): 1}, []),
    "mobilenet_v3_small": (1, 109, 1, 0, 1, "HARD_SWISH", 1 / 109, 496, "1.15.0",
                           {("ADD", 2): 6, ("CONV_2D", 3): 43, ("DEPTHWISE_CONV_2D", 3): 11, ("HARD_SWISH", 1): 19,
                            ("MEAN", 2): 10, ("MUL", 2): 18, ("RESHAPE", 1): 1, ("SOFTMAX", 2): 1}, []),
    "leaky_relu": (1, 6, 2, 0, 2, "LEAKY_RELU", 2 / 6, 824, "1.14.0",
                   {("CONV_2D", 3): 3, ("FULLY_CONNECTED", 4): 1, ("LEAKY_RELU", 1): 1, ("MEAN", 2): 1}, []),
    "tiny_int8": (0, 3, 3, 0, None, None, 1.0, 144, "1.14.0",
                  {("CONV_2D", 3): 1, ("FULLY_CONNECTED", 4): 1, ("MEAN", 2): 1}, []),
    "tiny_uint8": (0, 5, 5, 0, None, None, 1.0, 144, "1.14.0",
                   {("CONV_2D", 3): 1, ("FULLY_CONNECTED", 4): 1, ("MEAN", 2): 1, ("QUANTIZE", 1): 2}, []),
    "tiny_float_io": (0, 5, 3, 2, None, None, 1.0, 144, "1.14.0",
                      {("CONV_2D", 3): 1, ("DEQUANTIZE", 2): 1, ("FULLY_CONNECTED", 4): 1, ("MEAN", 2): 1,
                       ("QUANTIZE", 1): 1}, []),
    "tiny_float": (2, 3, 0, 0, 0, "CONV_2D", 0.0, 0, "1.6.0",
                   {("CONV_2D", 1): 1, ("FULLY_CONNECTED", 1): 1, ("MEAN", 1): 1}, ["model is not quantized"]),
    "tiny_dynamic_batch": (0, 3, 3, 0, None, None, 1.0, 144, "1.14.0",
                           {("CONV_2D", 3): 1, ("FULLY_CONNECTED", 4): 1, ("MEAN", 2): 1}, ["dynamic batch dimension"]),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_previous_answers_are_unchanged(tflite_model, name):
    status, n, on_tpu, boundary, cut, cut_op, fraction, params, runtime, versions, warnings = PINNED[name]
    r = check(tflite_model(name))
    table = r.format_table()
    assert r.status == status, table
    assert len(r.ops) == n and r.ops_on_tpu == on_tpu, table
    assert sum(o.boundary for o in r.ops) == boundary
    assert (r.cut_index, r.cut_op) == (cut, cut_op)
    assert r.fraction_mapped == pytest.approx(fraction)
    assert r.parameter_bytes == params
    assert r.required_runtime == runtime
    assert dict(collections.Counter((o.op, o.version) for o in r.ops)) == versions
    assert [w for w in r.warnings if not any(w.startswith(p) for p in warnings)] == [], r.warnings
    assert all(any(w.startswith(p) for w in r.warnings) for p in warnings), r.warnings
    # Before the cut everything maps; from the cut on, in a chain like these, nothing does.
    if cut is not None:
        assert all(o.mapped for o in r.ops[:cut] if not o.boundary)
        assert not any(o.mapped for o in r.ops[cut:])
