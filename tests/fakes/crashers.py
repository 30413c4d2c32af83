"""The malformed models of issue 11 that `check` called mappable while the interpreter crashed or failed on them.

Each builder returns .tflite bytes that read fine as a flatbuffer but are not a
sound graph. Handed to the TF Lite interpreter unchecked they segfault
(``duplicated_operator``, ``stride_zero``), fail at ``invoke()`` or
``get_tensor()`` with raw ``RuntimeError`` / ``ValueError`` /
``UnicodeDecodeError``, or ask for gigabytes; :func:`edgetpu.validation.validate`
must refuse every one, naming what is wrong (``EXPECTED`` holds a phrase of
each message).
"""

from __future__ import annotations

import numpy as np

from fakes.tflite_builder import Graph, conv_chain


def _int8_chain() -> Graph:
    return conv_chain(2, size=8, channels=4)


def duplicated_operator() -> bytes:
    """The second operator is a copy of the first: a tensor is produced twice, the output never."""
    g = _int8_chain()
    g.ops[1] = g.ops[0]
    return g.build()


def invalid_utf8_name() -> bytes:
    g = _int8_chain()
    g.tensors[1].name = "@@@@@@@@"
    data = g.build()
    assert data.count(b"@@@@@@@@") == 1
    return data.replace(b"@@@@@@@@", b"w\xff\xfe\xfd\x80\x81\x82\x83")


def input_lacks_data() -> bytes:
    """An op reads a tensor that no op produces, that is no model input and that has no data."""
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    ghost = g.tensor("ghost", "int8", [1, 8, 8, 4])
    y = g.tensor("y", "int8", [1, 8, 8, 4], output=True)
    g.op("ADD", [x, ghost], [y], version=2)
    return g.build()


def null_tensor_data() -> bytes:
    """A model output that no op produces (the interpreter's get_tensor says "Tensor data is null")."""
    g = _int8_chain()
    g.outputs.append(g.tensor("never_written", "int8", [1, 4]))
    return g.build()


def stride_zero() -> bytes:
    g = _int8_chain()
    ci, ins, outs, (name, opts) = g.ops[0]
    g.ops[0] = (ci, ins, outs, (name, {**opts, "strideW": 0}))
    return g.build()


def nan_scale() -> bytes:
    g = _int8_chain()
    g.tensors[g.inputs[0]].quantization.scale = np.array([np.nan], dtype=np.float32)
    return g.build()


def filter_larger_than_buffer() -> bytes:
    """Weights of shape [4, 3, 3, 4] (144 bytes) over a 36-byte buffer."""
    g = _int8_chain()
    w = g.tensors[g.ops[0][1][1]]
    g.buffers[w.buffer].data = g.buffers[w.buffer].data[:36]
    return g.build()


def int8_bias() -> bytes:
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    w = g.tensor("w", "int8", [4, 3, 3, 4], data=np.ones((4, 3, 3, 4)))
    b = g.tensor("b", "int8", [4], data=np.ones(4))
    y = g.tensor("y", "int8", [1, 8, 8, 4], output=True)
    g.op("CONV_2D", [x, w, b], [y], version=3)
    return g.build()


def huge_activation() -> bytes:
    """A 4.3 GB int8 activation (a flipped shape bit does this), which `check` used to call "0.01 MiB, fits"."""
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    big = g.tensor("big", "int8", [1, 65536, 65536, 1])
    g.op("RESIZE_NEAREST_NEIGHBOR", [x, g.const("size", [65536, 65536])], [big], version=3)
    y = g.tensor("y", "int8", [1, 65536, 65536, 1], output=True)
    g.op("RELU", [big], [y])
    return g.build()


#: builder -> a phrase the refusal must contain.
EXPECTED = {
    duplicated_operator: "already produced",
    invalid_utf8_name: "not valid UTF-8",
    input_lacks_data: "nothing produces it first",
    null_tensor_data: "model output tensor",
    stride_zero: "strideW >= 1",
    nan_scale: "finite, positive quantization scales",
    filter_larger_than_buffer: "a buffer of 144 bytes",
    int8_bias: "an int32 bias for int8 data",
    huge_activation: "4.3 GB",
}


# ------------------------------------------------------------------ found by the fuzz test (tests/test_edgetpu_fuzz.py)


def conv_without_filter() -> bytes:
    """CONV_2D with its filter input omitted (-1): the kernel dereferences it (SIGSEGV)."""
    g = _int8_chain()
    ci, ins, outs, opts = g.ops[1]
    g.ops[1] = (ci, [ins[0], -1, ins[2]], outs, opts)
    return g.build()


def strided_slice_with_one_input() -> bytes:
    """An op code turned into STRIDED_SLICE, which reads 4 inputs by position (SIGSEGV)."""
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    y = g.tensor("y", "int8", [1, 8, 8, 4], output=True)
    g.op("STRIDED_SLICE", [x], [y])
    return g.build()


def zero_point_out_of_range() -> bytes:
    """A uint8 input with zero point -1000 (a table lookup out of bounds: SIGSEGV)."""
    g = Graph()
    x = g.tensor("x", "uint8", [1, 8], zero_point=-1000, input=True)
    y = g.tensor("y", "int8", [1, 8], output=True)
    g.op("QUANTIZE", [x], [y])
    return g.build()


def add_output_scale_too_small() -> bytes:
    """An ADD whose output scale is 1e-30: its rescaling multiplier is >= 1 and the kernel aborts (SIGABRT)."""
    g = Graph()
    a = g.tensor("a", "int8", [1, 8], input=True)
    b = g.tensor("b", "int8", [1, 8], input=True)
    y = g.tensor("y", "int8", [1, 8], scale=1e-30, output=True)
    g.op("ADD", [a, b], [y], version=2)
    return g.build()


def lstm_without_input_gate_bias() -> bytes:
    """An int8 LSTM with input-gate weights but its input-gate bias omitted (SIGSEGV)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    from fakes.tflite_builder import int8_lstm

    m = s.ModelT.InitFromPackedBuf(int8_lstm(), 0)
    lstm = m.subgraphs[0].operators[1]
    lstm.inputs = np.array([(-1 if k == 12 else int(v)) for k, v in enumerate(lstm.inputs)], dtype=np.int32)
    fb = flatbuffers.Builder(1024)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


def reshape_to_a_wrong_constant_shape() -> bytes:
    """RESHAPE whose constant new shape is a bias vector of 20 random sizes (SIGSEGV)."""
    g = Graph()
    x = g.tensor("x", "int8", [1, 560], input=True)
    shape = g.const("shape", np.random.default_rng(0).integers(-500, 500, 20))
    y = g.tensor("y", "int8", [1, 560], output=True)
    g.op("RESHAPE", [x, shape], [y])
    return g.build()


def split_with_other_options() -> bytes:
    """A SPLIT carrying ReshapeOptions (an op code changed): the interpreter splits into 0 parts (SIGSEGV)."""
    g = Graph()
    x = g.tensor("x", "int8", [1, 28, 20], input=True)
    y = g.tensor("y", "int8", [1, 28, 20], output=True)
    g.op("SPLIT", [g.const("axis", np.array([1], np.int32)), x], [y], options=("ReshapeOptions", {}))
    return g.build()


def lstm_output_of_another_type() -> bytes:
    """An int8 LSTM whose output tensor says int64: the kernel writes int8 into it and damages the heap."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    from fakes.tflite_builder import int8_lstm

    m = s.ModelT.InitFromPackedBuf(int8_lstm(), 0)
    m.subgraphs[0].tensors[int(m.subgraphs[0].operators[1].outputs[0])].type = s.TensorType.INT64
    fb = flatbuffers.Builder(1024)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


def subnormal_scale() -> bytes:
    """A QUANTIZE float->int8 whose output scale is 8.4e-39, a subnormal float32 (SIGSEGV; 1.2e-38 runs)."""
    g = Graph()
    x = g.tensor("x", "float32", [1, 16, 16, 3], input=True)
    q = g.tensor("q", "int8", [1, 16, 16, 3], scale=8.4e-39)
    g.op("QUANTIZE", [x], [q])
    y = g.tensor("y", "int8", [1, 16, 16, 3], output=True)
    g.op("RELU", [q], [y])
    return g.build()


EXPECTED.update({
    subnormal_scale: "the smallest normal float32",
    split_with_other_options: "expected options of type SplitOptions, found ReshapeOptions",
    lstm_output_of_another_type: "the type of its output 'lstm/output' (int64)",
    conv_without_filter: "input 1 present",
    strided_slice_with_one_input: "at least 4 inputs",
    zero_point_out_of_range: "zero points of a uint8 tensor in 0..255",
    add_output_scale_too_small: "kernel's fixed-point rescaling",
    lstm_without_input_gate_bias: "input gate (inputs 1, 5, 12) all present or all omitted",
    reshape_to_a_wrong_constant_shape: "holding the input's 560 elements",
})
