"""After conversion: is an "int8" result really integer, and if not, which Keras layer and why.

TF's converter leaves an op in float (between DEQUANTIZE and QUANTIZE) when it
has no int8 kernel for it, even with ``TFLITE_BUILTINS_INT8``: e.g. the
``NEG`` in LayerNormalization's decomposition, or ``SQUARE`` in
RMSNormalization. :func:`check_full_integer` refuses such a result, naming the
op, the Keras layer it came from (read back from the tensor names), what
TFLite lacks, and the ways out; with ``float_layers`` the user allows named
layers (or all, with ``True``) to stay float.

Example:
    >>> from keras_compress.convert.checks import explain_float_op
    >>> print(explain_float_op("NEG", "LayerNormalization", "ln", calibrated=True))  # doctest: +ELLIPSIS
    TFLite has no int8 (nor int16x8) kernel for NEG, which LayerNormalization's decomposition uses ...
"""

from __future__ import annotations

from collections.abc import Sequence

from keras_compress.convert.layers import layer_index, layer_of_op
from keras_compress.errors import ConversionError

__all__ = ["FLOAT_OP_CAUSES", "LAYER_REWRITES", "check_full_integer", "explain_float_op"]

#: What TFLite lacks, per op the int8 converter leaves in float (TF 2.21).
FLOAT_OP_CAUSES = {
    "NEG": "TFLite has no int8 (nor int16x8) kernel for NEG, which {cls}'s decomposition uses (-mean * inv_stddev)",
    "SQUARE": "TFLite has no int8 kernel for SQUARE, which {cls}'s decomposition uses (x * x)",
    "CAST": "a CAST from a float tensor: an integer input fed as float, or an integer op inside the model",
}

#: Int8-friendly rewrites, per Keras layer class whose decomposition has a float-only op.
LAYER_REWRITES = {
    "LayerNormalization": "write it out as d = x - mean(x); d * rsqrt(mean(d * d) + eps) * gamma + beta (MEAN, SUB, "
    "MUL, ADD and RSQRT all have int8 kernels; measured full int8 on TF 2.21)",
    "RMSNormalization": "write it out as x * rsqrt(mean(x * x) + eps) * scale (MUL, MEAN, RSQRT have int8 kernels)",
}


def explain_float_op(op: str, cls: str, layer: str, *, calibrated: bool) -> str:
    """Why op ``op`` of layer ``layer`` (class ``cls``) stayed float, and what to do about it."""
    keep = f"keep it float with to_tflite(..., float_layers=[{layer!r}]) (it then runs on the CPU between DEQUANTIZE/QUANTIZE)"
    if not calibrated:
        return (f"the layer has no quantization ranges (it was left float in quantize_model); give representative_data "
                f"so the converter calibrates it, or {keep}")
    cause = FLOAT_OP_CAUSES.get(op, "TF's converter found no int8 kernel for {op} and left it in float").format(op=op, cls=cls)
    outs = [keep]
    if cls in LAYER_REWRITES:
        outs.append(f"replace the layer: {LAYER_REWRITES[cls]}")
    if op not in ("NEG",):
        outs.append("or convert with quantization='int16x8'")
    return f"{cause}. Ways out: " + "; ".join(outs)


def check_full_integer(data: bytes, model, *, calibrated: bool, float_layers: Sequence[str] | bool = ()) -> None:
    """Refuse an "int8" result in which some op still computes in float.

    Quantize/Dequantize ops at the float inputs/outputs are allowed (float I/O
    was asked for), and so are the ops of layers named in ``float_layers``
    (``True``: any layer).

    Raises:
        ConversionError: naming the op, its Keras layer, the cause and the ways out.
    """
    from edgetpu.model import read_model

    if float_layers is True:
        return
    sg, layers = read_model(data).main, layer_index(model)
    for op in sg.operators:
        if op.op in ("QUANTIZE", "DEQUANTIZE"):
            continue
        floats = [sg.tensors[i].name for i in (*op.outputs, *op.inputs) if i >= 0 and sg.tensors[i].dtype.startswith("float")]
        if not floats:
            continue
        layer = layer_of_op(sg, op, layers)
        if layer is not None and layer.name in (float_layers or ()):
            continue
        lname, cls = (layer.name, type(layer).__name__) if layer is not None else ("?", "unknown layer")
        where = f"layer {lname!r} ({cls})" if layer is not None else "no Keras layer found in its tensor names"
        raise ConversionError(
            f"model {model.name!r}: quantization='int8' expects every op in int8, but op {op.index} ({op.op}) from "
            f"{where} computes in float (tensor {floats[0]!r}): {explain_float_op(op.op, cls, lname, calibrated=calibrated)}"
        )
