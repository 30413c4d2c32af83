"""What the report computes from a demo or recipe folder: Pareto fronts, per-layer sparsity, per-layer int8 error.

Everything here reads ``.tflite`` files (through :mod:`edgetpu.model` and the
TFLite interpreter), so a report can be written on a machine that only has the
output folder.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgetpu import interpreter_backend

__all__ = [
    "pareto_front",
    "layer_name",
    "weight_sparsity",
    "layer_sqnr",
    "layer_table",
    "sample_inputs",
    "WEIGHTED_OPS",
]

#: Ops whose second input is a weight tensor (kernel) counted for sparsity.
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D")

#: Ops that only change the representation; skipped when matching tensors.
_REPRESENTATION_OPS = ("QUANTIZE", "DEQUANTIZE")


def pareto_front(points: Iterable[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: smaller-or-equal x with strictly higher y.

    ``x`` is a cost (size, latency), ``y`` a benefit (accuracy). The returned
    indices are sorted by increasing ``x``.

    Example:
        >>> pareto_front([(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (0.5, 0.5)])
        [3, 1]
    """
    pts = [(float(x), float(y), i) for i, (x, y) in enumerate(points)]
    pts.sort(key=lambda p: (p[0], -p[1]))
    front, best = [], float("-inf")
    for _, y, i in pts:
        if y > best:
            front.append(i)
            best = y
    return front


#: Name prefixes that pruning / QAT wrappers add (tfmot's convention), removed so variants line up.
_WRAPPER_PREFIX = re.compile(r"^(quant_|prune_low_magnitude_)+")


def layer_name(*names: str) -> str:
    """A short layer name from TFLite tensor names (``"model_1/conv1_1/Relu;..."`` -> ``"conv1"``).

    The first name holding a ``/`` path wins; the Keras layer is the path's
    second component, with the ``_1`` suffix that tracing adds and the
    ``quant_`` / ``prune_low_magnitude_`` prefixes of wrappers removed.

    Example:
        >>> layer_name("model_1/quant_conv1_1/Relu;model_1/quant_conv1_1/BiasAdd")
        'conv1'

    """
    for name in names:
        if not name:
            continue
        first = name.split(";")[0]
        parts = [p for p in first.split("/") if p]
        if len(parts) >= 2:
            return _WRAPPER_PREFIX.sub("", re.sub(r"_\d+$", "", parts[1]))
    return (names[0] or "?").split(";")[0] if names else "?"


def _weight_tensor(sg, producers: dict, op):
    """The constant weight tensor of ``op`` (through a DEQUANTIZE for float16 models), or None."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    t = sg.tensors[op.inputs[1]]
    if t.is_constant:
        return t
    prod = producers.get(t.index)
    if prod is not None and prod.op == "DEQUANTIZE" and sg.tensors[prod.inputs[0]].is_constant:
        return sg.tensors[prod.inputs[0]]
    return None


def weight_sparsity(model: Any) -> list[dict]:
    """Fraction of exactly-zero weights of every conv / depthwise / dense op of a .tflite model.

    A quantized weight counts as zero when it equals its zero point (int8
    weights are symmetric, zero point 0), so this is the sparsity the file
    ships, whatever the mode.

    Args:
        model: a .tflite path or bytes.

    Returns:
        One dict per weighted op, in execution order:
        ``{"index", "op", "layer", "weights", "zeros", "sparsity", "unique"}``
        (``unique``: distinct values in the kernel, e.g. <= 16 after 16-cluster QAT).
    """
    from edgetpu.model import read_model

    m = read_model(model)
    sg = m.subgraphs[0]
    producers = {o: op for op in sg.operators for o in op.outputs}
    out = []
    for op in sg.operators:
        if op.op not in WEIGHTED_OPS:
            continue
        t = _weight_tensor(sg, producers, op)
        if t is None:
            continue
        data = m.tensor_data(t)
        if data is None or data.size == 0:
            continue
        if t.zero_point and len(set(t.zero_point)) == 1:
            zeros = int(np.count_nonzero(data == t.zero_point[0]))
        elif t.zero_point and t.quantized_dimension is not None and len(t.zero_point) == data.shape[t.quantized_dimension]:
            zp = np.asarray(t.zero_point).reshape([-1 if i == t.quantized_dimension else 1 for i in range(data.ndim)])
            zeros = int(np.count_nonzero(data == zp))
        else:
            zeros = int(np.count_nonzero(data == 0))
        bias = sg.tensors[op.inputs[2]].name if len(op.inputs) > 2 and op.inputs[2] >= 0 else ""
        out.append(
            {
                "index": op.index,
                "op": op.op,
                "layer": layer_name(sg.tensors[op.outputs[0]].name, t.name, bias),
                "weights": int(data.size),
                "zeros": zeros,
                "sparsity": zeros / data.size,
                "unique": int(np.unique(data).size),
            }
        )
    return out


def sample_inputs(folder: Path, input_shape: Sequence[int], n: int = 32) -> tuple[np.ndarray, str]:
    """Inputs for the per-layer error, and where they came from.

    In order: ``folder/sample_inputs.npy`` (or ``calibration.npy``); the
    built-in digits or shapes test images when the model's input shape is
    theirs; else uniform noise in [0, 1) (the page says so).
    """
    shape = tuple(int(s) for s in input_shape[1:])
    for name in ("sample_inputs.npy", "calibration.npy"):
        p = folder / name
        if p.is_file():
            try:
                x = np.load(p, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError):
                continue
            if tuple(x.shape[1:]) == shape:
                return x[:n], f"{name} ({min(n, len(x))} samples)"
    from keras_compress.datasets import load_digits, load_shapes

    # The built-in sets need no download; digits needs scikit-learn (a dependency).
    for loader, label, size in ((load_digits, "digits", (32, 32, 1)), (load_shapes, "shapes", (32, 32, 3))):
        if shape == size:  # generate or load only when the shape can match
            _, (x_test, _) = loader()
            return x_test[:n].astype(np.float32), f"built-in {label} test images ({n} samples)"
    rng = np.random.default_rng(0)
    return rng.random((n, *shape), dtype=np.float32), f"uniform noise in [0, 1) ({n} samples): no matching data was found"


def _all_tensors(path_or_bytes: Any, x: np.ndarray) -> tuple[list, dict[str, list[np.ndarray]]]:
    """Run every sample through a fresh interpreter that keeps all tensors; op outputs by name (dequantized)."""
    from edgetpu.model import read_model
    from edgetpu.runtime import dequantize, load_model_bytes, quantize

    data, _ = load_model_bytes(path_or_bytes)
    m = read_model(data)
    sg = m.subgraphs[0]
    with warnings.catch_warnings():  # "intended for debugging": that is what this is
        warnings.simplefilter("ignore")
        interp = interpreter_backend().Interpreter(model_content=data, num_threads=1, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    details = {d["index"]: d for d in interp.get_tensor_details()}
    ops = [op for op in sg.operators if op.op not in _REPRESENTATION_OPS and op.outputs]
    values: dict[str, list[np.ndarray]] = {}
    for sample in x:
        interp.set_tensor(inp["index"], quantize(sample[None].astype(np.float32), inp))
        interp.invoke()
        for op in ops:
            idx = op.outputs[0]
            d = details.get(idx)
            if d is None:
                continue
            try:
                raw = interp.get_tensor(idx)
            except ValueError:
                continue
            q = d.get("quantization", (0.0, 0))
            values.setdefault(sg.tensors[idx].name, []).append(dequantize(raw, {"quantization": q}))
    labels = {}
    for op in ops:
        consts = [sg.tensors[i].name for i in op.inputs if i >= 0 and sg.tensors[i].is_constant]
        labels[op.index] = layer_name(sg.tensors[op.outputs[0]].name, *consts)
    return [(op, sg.tensors[op.outputs[0]].name, labels[op.index]) for op in ops], values


def layer_sqnr(float_model: Any, quant_model: Any, x: np.ndarray) -> list[dict]:
    """SQNR (dB) of every op output of a quantized model against the float32 model, layer by layer.

    Method: both .tflite models run the same float inputs in the TFLite
    interpreter with ``experimental_preserve_all_tensors=True``; each op output
    of the quantized model is dequantized (scale, zero point) and matched to
    the float model's tensor of the same name (the converter keeps Keras layer
    names), else to the float op of the same type at the same position among
    non-QUANTIZE/DEQUANTIZE ops. The error is cumulative: layer k sees the
    quantized outputs of layers before it, as on the device.

    Returns:
        One dict per matched op, in execution order:
        ``{"index", "op", "layer", "sqnr_db", "matched_by", "weights", "activations"}``
        (``weights``: the stored type of the op's constant weights, e.g. ``"int4"``,
        or ``None``; ``activations``: the type of its output tensor).
    """
    from keras_compress.convert.compare import sqnr_db

    f_ops, f_vals = _all_tensors(float_model, x)
    q_ops, q_vals = _all_tensors(quant_model, x)
    types = _op_types(quant_model)
    by_pos = {}
    for pos, (op, name, _) in enumerate(f_ops):
        by_pos[pos] = (op.op, name)
    out = []
    for pos, (op, name, label) in enumerate(q_ops):
        if name in f_vals and name in q_vals:
            ref_name, how = name, "name"
        elif pos in by_pos and by_pos[pos][0] == op.op and by_pos[pos][1] in f_vals and name in q_vals:
            ref_name, how = by_pos[pos][1], "position"
        else:
            continue
        ref = np.concatenate([a.reshape(1, -1) for a in f_vals[ref_name]])
        test = np.concatenate([a.reshape(1, -1) for a in q_vals[name]])
        if ref.shape != test.shape:
            continue
        out.append(
            {
                "index": op.index,
                "op": op.op,
                "layer": label,
                "sqnr_db": sqnr_db(ref, test),
                "matched_by": how,
                "weights": types[op.index][0],
                "activations": types[op.index][1],
            }
        )
    return out


def _op_types(model: Any) -> dict[int, tuple[str | None, str]]:
    """``{op index: (stored weight type or None, output tensor type)}`` of a .tflite model."""
    from edgetpu.model import read_model

    sg = read_model(model).subgraphs[0]
    producers = {o: op for op in sg.operators for o in op.outputs}
    out = {}
    for op in sg.operators:
        w = _weight_tensor(sg, producers, op) if op.op in WEIGHTED_OPS else None
        out[op.index] = (w.dtype if w is not None else None, sg.tensors[op.outputs[0]].dtype if op.outputs else "?")
    return out


def layer_table(records: list[dict]) -> list[dict]:
    """One row per Keras layer from :func:`layer_sqnr`'s records: the error at the layer's output, and its types.

    The SQNR is that of the layer's last op (its output, after the activation);
    ``weights`` is the weight type of its weighted op, ``activations`` the type
    of its output tensor.

    Example:
        >>> layer_table([{"layer": "conv1", "sqnr_db": 30.0, "weights": "int4", "activations": "float32"},
        ...              {"layer": "conv1", "sqnr_db": 29.5, "weights": None, "activations": "float32"}])
        [{'layer': 'conv1', 'sqnr_db': 29.5, 'weights': 'int4', 'activations': 'float32'}]
    """
    rows: dict[str, dict] = {}
    for r in records:
        row = rows.setdefault(r["layer"], {"layer": r["layer"], "sqnr_db": r["sqnr_db"], "weights": None,
                                           "activations": r.get("activations")})
        row["sqnr_db"], row["activations"] = r["sqnr_db"], r.get("activations")
        row["weights"] = row["weights"] or r.get("weights")
    return list(rows.values())
