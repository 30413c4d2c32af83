"""Below int8: 4-bit weights through Google's AI Edge Quantizer (AEQ), on a float32 flatbuffer.

The route: TF's converter writes a float32 ``.tflite`` (our
:func:`~keras_compress.convert.converter.convert_in_process`), then AEQ
rewrites its weights. Two modes, chosen per Keras layer:

- ``int4_weights``: 4-bit weights dequantized in the graph (AEQ's
  weight-only recipe: ``DEQUANTIZE`` int4 -> float op), float activations;
- ``int4_int8``: 4-bit weights and int8 activations (AEQ's static recipe,
  ranges from AEQ's calibration on the representative data).

AEQ's 4-bit scheme (``uniform_quantize_tensor``): symmetric, per output
channel, scale = max|w| / 7, values rounded and clipped to [-8, 7], so in
practice [-7, 7]. Layers kept at 8 bits use the same recipe with 8 bits
(symmetric narrow range [-127, 127]). By default the first and last weighted
layers stay at 8 bits (the usual exceptions: the first sees raw pixels, the
last produces the logits); ``int8_layers=()`` puts every layer at 4 bits.

AEQ names an op by its output tensor names, each followed by ";"; :func:`weighted_ops` reads the Keras
layer behind each weighted op from the tensor names (``convert.layers``), so a
recipe entry per op names exactly one layer.

Example:
    >>> from keras_compress.convert.lowbit import LOWBIT_MODES, weight_bits
    >>> sorted(LOWBIT_MODES)
    ['int4_int8', 'int4_weights']
    >>> weight_bits(["stem", "body", "head"], None)
    {'stem': 8, 'body': 4, 'head': 8}
    >>> weight_bits(["stem", "body", "head"], ["body"])
    {'stem': 4, 'body': 8, 'head': 4}
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from keras_compress.convert.layers import layer_index, layer_of_op, layer_of_tensor, walk_layers
from keras_compress.errors import ConversionError

__all__ = ["LOWBIT_MODES", "WEIGHTED_OPS", "WeightedOp", "aeq_quantize", "check_lowbit", "per_layer_error", "weight_bits",
           "weighted_ops"]

log = logging.getLogger("keras_compress")

#: Modes that go through AI Edge Quantizer.
LOWBIT_MODES = ("int4_weights", "int4_int8")

#: TFLite ops whose constant weights AEQ quantizes, and the input index of the weight.
WEIGHTED_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1,
                "CONV_3D": 1, "EMBEDDING_LOOKUP": 1, "BATCH_MATMUL": 1}


class WeightedOp(NamedTuple):
    """An op with constant weights: its Keras layer, TFLite op, output tensor name, stored weight type."""

    layer: str
    op: str
    output: str
    weight_dtype: str


def weighted_ops(data: bytes, model) -> list[WeightedOp]:
    """The ops with constant weights (stored, or stored then ``DEQUANTIZE``-d), in graph order."""
    from edgetpu.model import read_model

    sg, layers = read_model(data).main, _layers(model)
    producers = {o: p for p in sg.operators for o in p.outputs}
    found = []
    for op in sg.operators:
        w = WEIGHTED_OPS.get(op.op)
        if w is None or len(op.inputs) <= w or op.inputs[w] < 0:
            continue
        t = op.inputs[w]
        if t in producers and producers[t].op == "DEQUANTIZE":
            t = producers[t].inputs[0]
        if sg.tensors[t].is_constant:
            found.append(WeightedOp(_layer_name(sg, op, w, layers), op.op, sg.tensors[op.outputs[0]].name,
                                    sg.tensors[t].dtype))
    return found


def _layers(model) -> dict:
    """:func:`layer_index` plus the wrappers of single layers (a QAT wrapper names the TF scope of its layer)."""
    wrappers = {w.name: w for w in walk_layers(model) if getattr(w, "layer", None) is not None}
    return {**layer_index(model), **wrappers}


def _layer_name(sg, op, w: int, layers: dict) -> str:
    """The Keras layer of a weighted op: from its weight tensor's name first (the output of the last
    op is named ``StatefulPartitionedCall:0``), else from the op's other tensors."""
    layer = layer_of_tensor(sg.tensors[op.inputs[w]].name, layers) or layer_of_op(sg, op, layers)
    layer = getattr(layer, "layer", layer)  # a QAT wrapper: the layer it wraps
    return layer.name if layer is not None else sg.tensors[op.outputs[0]].name


def weight_bits(layer_names: Sequence[str], int8_layers: Sequence[str] | None) -> dict[str, int]:
    """``{layer: 4 or 8}``: ``int8_layers`` at 8 bits (None: the first and last), the others at 4."""
    names = list(dict.fromkeys(layer_names))
    unknown = sorted(set(int8_layers or ()) - set(names))
    if unknown:
        raise ConversionError(f"int8_layers: {unknown} are not layers with weights AI Edge Quantizer can quantize; "
                              f"expected some of {names}")
    keep = {names[0], names[-1]} if int8_layers is None and names else set(int8_layers or ())
    return {n: 8 if n in keep else 4 for n in names}


def aeq_quantize(float_blob: bytes, model, bits: dict[str, int], *, activations: int | None = None,
                 samples: list | None = None, verbose: bool = False) -> tuple[bytes, dict[str, int]]:
    """Quantize the weights of a float32 flatbuffer with AEQ, ``bits[layer]`` per Keras layer.

    Returns the flatbuffer and the bits each layer got: 8 where AEQ's policy has
    no 4-bit config for the op (``DEPTHWISE_CONV_2D``: LiteRT has no int4
    depthwise kernel), else as asked.

    ``activations=8``: static int8 activations calibrated by AEQ on ``samples``
    (``[[array per input], ...]``, as :func:`~keras_compress.convert.calibration.calibration_samples`
    gives them); ``None``: weight-only (explicit ``DEQUANTIZE``, float compute).
    ``verbose``: let AEQ's calibration progress bar through (stderr).

    Raises:
        ConversionError: a layer of ``bits`` has no weighted op, or AEQ fails.
    """
    from ai_edge_quantizer import quantizer

    ops = weighted_ops(float_blob, model)
    unknown = set(bits) - {w.layer for w in ops}
    if unknown:
        raise ConversionError(f"model {model.name!r}: layer(s) {sorted(unknown)} have no weighted op "
                              f"(CONV_2D, FULLY_CONNECTED, ...) in the float flatbuffer; weighted layers: "
                              f"{sorted({w.layer for w in ops})}")
    q = quantizer.Quantizer(bytearray(float_blob))
    used = {}
    if activations is not None:  # ops without weights (pooling, add, softmax...); the per-op entries after it win
        q.add_static_config(".*", "*", activation_num_bits=activations, weight_num_bits=8)
    for w in ops:
        used[w.layer] = _add_op_config(q, "^" + re.escape(w.output) + ";$", w.op, bits.get(w.layer, 4), activations)
    try:
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stderr(io.StringIO())
        with warnings.catch_warnings(), quiet:  # AEQ's calibration keeps every tensor on purpose
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            calib = q.calibrate(_calibration_data(float_blob, samples), num_threads=1) if q.need_calibration else None
            return bytes(q.quantize(calib, enable_progress_report=False).quantized_model), used
    except (ValueError, RuntimeError, KeyError) as e:
        raise ConversionError(f"AI Edge Quantizer failed on model {model.name!r}: {type(e).__name__}: {e}") from e


def _add_op_config(q, regex: str, op: str, n: int, activations: int | None) -> int:
    """Add one op's entry at ``n`` bits, or at 8 when AEQ's policy refuses ``n`` for this op; the bits used."""
    try:
        if activations is None:
            q.add_weight_only_config(regex, op, num_bits=n)
        else:
            q.add_static_config(regex, op, activation_num_bits=activations, weight_num_bits=n)
        return n
    except ValueError:
        if n == 8:
            raise
        log.info("%s (%s): AI Edge Quantizer has no %d-bit config for this op; kept at 8 bits", regex, op, n)
        return _add_op_config(q, regex, op, 8, activations)


def _calibration_data(float_blob: bytes, samples: list | None) -> dict:
    """AEQ's calibration data: ``{"serving_default": [{input name: array of batch 1}, ...]}``."""
    from ai_edge_litert.interpreter import Interpreter

    if not samples:
        raise ConversionError("quantization='int4_int8' needs representative_data (AEQ calibrates int8 activations)")
    it = Interpreter(model_content=bytes(float_blob))
    (key,) = it.get_signature_list()
    details = it.get_signature_runner(key).get_input_details()
    order = {d["index"]: name for name, d in details.items()}
    names = [order[i] for i in sorted(order)]
    return {key: [{n: np.asarray(a).astype(details[n]["dtype"]) for n, a in zip(names, s)} for s in samples]}


def check_lowbit(data: bytes, model, bits: dict[str, int], *, activations: int | None) -> None:
    """Verify AEQ's result: each weighted layer's stored weights at its bit-width, and no float op where int8 was asked.

    Raises:
        ConversionError: naming the layer, op, expected and found weight type.
    """
    for w in weighted_ops(data, model):
        want = f"int{bits.get(w.layer, 4)}"
        if w.weight_dtype != want:
            raise ConversionError(f"model {model.name!r}: op {w.op} ({w.output!r}) of layer {w.layer!r} has "
                                  f"{w.weight_dtype} weights; expected {want}")
    if activations is not None:
        from keras_compress.convert.checks import check_full_integer

        check_full_integer(data, model, calibrated=True)


def per_layer_error(model, tflite: bytes, x, *, max_samples: int = 16) -> dict[str, float]:
    """``{Keras layer: SNR in dB}`` of each layer's last output (activation) tensor, by AEQ's validation.

    AEQ's ``compare_model`` runs the float32 flatbuffer of ``model`` and ``tflite``
    on the first ``max_samples`` of ``x`` and compares the tensors the two share
    by name (those of a model AEQ quantized: its own outputs keep the float names).
    A model output no layer name reaches is reported as ``"output"``.
    """
    from ai_edge_quantizer import model_validator
    from ai_edge_quantizer.utils import validation_utils

    from keras_compress.convert.tflite import to_tflite

    float_blob = to_tflite(model, quantization="float32", verbose=False)
    x = np.asarray(x, np.float32)[:max_samples]
    data = _calibration_data(float_blob, [[x[i:i + 1]] for i in range(len(x))])
    with warnings.catch_warnings():  # AEQ's validation keeps every tensor on purpose
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        res = model_validator.compare_model(float_blob, bytes(tflite), data,
                                            [validation_utils.ValidationErrorMetric.SNR], num_threads=1)
    layers, out = _layers(model), {}
    for key in res.available_signature_keys():
        sig = res.get_signature_comparison_result(key)
        for name, metrics in {**sig.intermediate_tensors, **sig.output_tensors}.items():  # activations, not weights
            layer = layer_of_tensor(name, layers)
            label = getattr(layer, "layer", layer).name if layer is not None else "output" if name in sig.output_tensors else None
            snr = float(metrics.get("snr", np.nan))
            if label is not None and np.isfinite(snr) and snr > 0:
                out[label] = 10.0 * float(np.log10(snr))  # AEQ's SNR is a power ratio
    return out
