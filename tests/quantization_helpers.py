"""Shared helpers for the quantization tests: tiny fixtures, conversion, graph checks."""

from __future__ import annotations

import numpy as np


def convert_qat(model, *, input_type="int8", output_type="int8") -> bytes:
    """Full-int8 TFLite from a QAT model's own ranges: ``to_tflite`` with no representative data.

    (``to_tflite`` asks the converter for plain builtins in this case: TFLite's
    Python front end refuses ``TFLITE_BUILTINS_INT8`` without a representative
    dataset before it looks at the graph; the FakeQuant ranges make every op
    int8, which :func:`float_ops` checks.)
    """
    from keras_compress.convert import to_tflite

    return to_tflite(model, quantization="int8", input_type=input_type, output_type=output_type, verbose=False)


def ops_and_types(blob: bytes):
    """[(op name, [input dtypes], [output dtypes])] of the main subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(blob, 0)
    names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    types = {v: k for k, v in schema.TensorType.__dict__.items() if not k.startswith("_")}
    g = m.subgraphs[0]
    out = []
    for op in g.operators:
        code = m.operatorCodes[op.opcodeIndex]
        b = max(code.builtinCode, code.deprecatedBuiltinCode)
        ins = [types[g.tensors[i].type] for i in op.inputs if i >= 0]
        outs = [types[g.tensors[i].type] for i in op.outputs]
        out.append((names[b], ins, outs))
    return out


def float_ops(blob: bytes):
    """Ops that touch a float tensor, or Quantize/Dequantize ops (should be none in a full-int8 model)."""
    bad = []
    for name, ins, outs in ops_and_types(blob):
        if name in ("DEQUANTIZE",) or any(t.startswith("FLOAT") for t in ins + outs):
            bad.append((name, ins, outs))
    return bad


def run_tflite(blob: bytes, x: np.ndarray) -> np.ndarray:
    import edgetpu

    return np.asarray(edgetpu.run(edgetpu.make_interpreter(blob), x))


def int8_layer_output(blob: bytes, x: np.ndarray, layer_name: str) -> np.ndarray:
    """Dequantized output of the first TFLite op whose output tensor comes from Keras layer ``layer_name``.

    Runs the reference kernels (no XNNPACK) with all intermediate tensors kept.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        model_content=blob,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    scale, zero = inp["quantization"]
    it.set_tensor(inp["index"], np.clip(np.round(x / scale + zero), -128, 127).astype(inp["dtype"]))
    it.invoke()
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    for op in it._get_ops_details():
        d = tensors[op["outputs"][0]]
        if f"/{layer_name}_1/" in d["name"].split(";")[0] or f"/{layer_name}/" in d["name"].split(";")[0]:
            s, z = d["quantization"]
            return (it.get_tensor(d["index"]).astype(np.float32) - z) * s, s
    raise KeyError(f"no TFLite op output from layer {layer_name!r}")
