"""Keras 3 model -> TFLite flatbuffer, in every TFLite mode.

The route is Keras's own LiteRT export (``model.export(path, format="litert")``:
ExportArchive -> SavedModel -> ``TFLiteConverter.from_saved_model``), because
``TFLiteConverter.from_keras_model`` is broken for Keras 3 in several TF
releases. Input shapes are made static (batch 1 by default): XNNPACK and the
Edge TPU compiler both want static shapes.
"""

from __future__ import annotations

import enum
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from edgetpu._io import atomic_write_bytes
from keras_compress.convert.calibration import calibration_samples, representative_dataset
from keras_compress.errors import CalibrationDataError, ConversionError

__all__ = ["Quantization", "Target", "to_tflite", "is_qat_model"]

log = logging.getLogger("keras_compress")


class Quantization(str, enum.Enum):
    """TFLite conversion modes."""

    FLOAT32 = "float32"  # no quantization
    FLOAT16 = "float16"  # float16 weights, float compute on CPU
    DYNAMIC = "dynamic"  # int8 weights, float activations (dynamic range)
    INT8 = "int8"  # full integer: int8 weights and activations, int8/uint8 I/O
    INT16X8 = "int16x8"  # int16 activations, int8 weights (not for the Edge TPU)

    @classmethod
    def get(cls, value: "str | Quantization") -> "Quantization":
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ConversionError(f"quantization: expected one of {allowed}, got {value!r}") from None


class Target(str, enum.Enum):
    """Where the model will run."""

    CPU = "cpu"
    EDGETPU = "edgetpu"

    @classmethod
    def get(cls, value: "str | Target | None") -> "Target":
        if value is None:
            return cls.CPU
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ConversionError(f"target: expected None or one of {allowed}, got {value!r}") from None


_IO_TYPES = {
    Quantization.FLOAT32: ("float32",),
    Quantization.FLOAT16: ("float32",),
    Quantization.DYNAMIC: ("float32",),
    Quantization.INT8: ("int8", "uint8", "float32"),
    Quantization.INT16X8: ("int16", "float32"),
}


def is_qat_model(model) -> bool:
    """True when some layer of ``model`` (nested included) simulates quantization.

    Quantization-aware layers declare the class attribute ``kc_fake_quant = True``;
    their trained ranges make calibration data unnecessary.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if getattr(type(layer), "kc_fake_quant", False):
            return True
    return False


def _resolve_io_type(name: str, value: Any, mode: Quantization) -> str:
    allowed = _IO_TYPES[mode]
    if value is None:
        return allowed[0]
    value = getattr(value, "name", value)  # tf.int8 / np.dtype -> "int8"
    value = str(value)
    if value not in allowed:
        raise ConversionError(f"{name}: mode {mode.value!r} allows {', '.join(allowed)}; got {value!r}")
    return value


def _input_signature(model, batch_size: int | None):
    import tensorflow as tf

    if not getattr(model, "inputs", None):
        raise ConversionError(
            f"model {getattr(model, 'name', model)!r} has no defined inputs: build it (call it once on data or use keras.Input) before converting"
        )
    specs = [tf.TensorSpec((batch_size,) + tuple(t.shape[1:]), tf.float32, name=getattr(t, "name", None)) for t in model.inputs]
    return [specs[0]] if len(specs) == 1 else [specs]


def to_tflite(
    model,
    path: str | os.PathLike | None = None,
    *,
    quantization: str | Quantization = "int8",
    representative_data: Any = None,
    num_calibration_samples: int = 100,
    input_type: Any = None,
    output_type: Any = None,
    target: str | Target | None = None,
    per_channel: bool = True,
    batch_size: int | None = 1,
    verbose: bool = True,
) -> bytes:
    """Convert a Keras 3 model to a TFLite flatbuffer.

    Args:
        model: a built Keras 3 model (Sequential, Functional or subclassed with
            known inputs). Pruning wrappers should be stripped first.
        path: where to write the ``.tflite``; written atomically (temp file then
            rename), and nothing is written if conversion fails. ``None``: only
            return the bytes.
        quantization: ``"float32"``, ``"float16"``, ``"dynamic"``, ``"int8"``
            (full integer) or ``"int16x8"``.
        representative_data: calibration inputs for ``"int8"`` and ``"int16x8"``:
            an array ``(N, *input_shape)``, a list of arrays for several inputs,
            a ``tf.data.Dataset`` or an iterable of batches. Not needed for a
            quantization-aware-trained model (its ranges are learned).
        num_calibration_samples: how many samples of ``representative_data`` to use.
        input_type / output_type: I/O dtype. ``"int8"`` mode: ``"int8"``
            (default), ``"uint8"`` or ``"float32"`` (Quantize/Dequantize ops at
            the ends). ``"int16x8"``: ``"int16"`` (default) or ``"float32"``.
            Other modes: float32.
        target: ``None``/``"cpu"`` or ``"edgetpu"``. ``"edgetpu"`` requires
            ``"int8"``, only builtin int8 ops, batch 1, and runs
            :func:`edgetpu.check` on the result, logging every op that will
            not map to the TPU with the reason and a fix.
        per_channel: per-channel weight quantization for conv kernels (the
            default, as TFLite does); ``False`` forces per-tensor.
        batch_size: static batch of the converted model (default 1);
            ``None`` keeps a dynamic batch (not accepted with ``target="edgetpu"``).
        verbose: show calibration progress.

    Returns:
        The ``.tflite`` flatbuffer bytes.

    Raises:
        ConversionError: bad arguments or a converter failure (its message included).
        CalibrationDataError: calibration data missing or of the wrong shape/dtype.

    Example:
        >>> import keras, numpy as np
        >>> from keras_compress.convert import to_tflite
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> blob = to_tflite(m, quantization="int8", representative_data=np.random.rand(16, 8), verbose=False)
        >>> blob[4:8]
        b'TFL3'
    """
    import tensorflow as tf

    mode = Quantization.get(quantization)
    tgt = Target.get(target)
    if tgt is Target.EDGETPU:
        if mode is not Quantization.INT8:
            raise ConversionError(
                f"target='edgetpu' needs quantization='int8' (the Edge TPU runs only 8-bit integer ops); got {mode.value!r}"
            )
        if batch_size != 1:
            raise ConversionError(f"target='edgetpu' needs a static batch of 1 (the compiler rejects dynamic shapes); got batch_size={batch_size!r}")
    in_type = _resolve_io_type("input_type", input_type, mode)
    out_type = _resolve_io_type("output_type", output_type, mode)

    kwargs: dict[str, Any] = {}
    if mode is not Quantization.FLOAT32:
        kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if mode is Quantization.FLOAT16:
        kwargs["target_spec"] = {"supported_types": [tf.float16], "supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    elif mode is Quantization.INT8:
        # A QAT model without calibration data: TFLite's Python front end refuses
        # TFLITE_BUILTINS_INT8 without a representative dataset before it looks at
        # the graph, so ask for plain builtins; the FakeQuant ranges still make
        # every op int8, which _check_full_integer verifies after conversion.
        qat_only = representative_data is None and is_qat_model(model)
        ops = tf.lite.OpsSet.TFLITE_BUILTINS if qat_only else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        kwargs["target_spec"] = {"supported_ops": [ops]}
    elif mode is Quantization.INT16X8:
        kwargs["target_spec"] = {
            "supported_ops": [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        }
    else:
        kwargs["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if mode in (Quantization.INT8, Quantization.INT16X8):
        if in_type != "float32":
            kwargs["inference_input_type"] = tf.as_dtype(in_type)
        if out_type != "float32":
            kwargs["inference_output_type"] = tf.as_dtype(out_type)
        if representative_data is not None:
            samples = calibration_samples(model, representative_data, num_calibration_samples)
            kwargs["representative_dataset"] = representative_dataset(samples, verbose)
        elif not (mode is Quantization.INT8 and is_qat_model(model)):
            raise CalibrationDataError(
                f"quantization={mode.value!r} needs representative_data (a few hundred typical inputs of shape "
                f"{tuple(model.inputs[0].shape[1:])}) unless the model was quantization-aware trained"
            )
        if not per_channel:
            kwargs["_experimental_disable_per_channel"] = True

    signature = _input_signature(model, batch_size)
    with tempfile.TemporaryDirectory(prefix="kc_convert_") as tmp:
        out = Path(tmp) / "model.tflite"
        try:
            model.export(str(out), format="litert", input_signature=signature, verbose=False, **kwargs)
        except CalibrationDataError:
            raise
        except Exception as e:  # the converter raises many types (ConverterError, ValueError, RuntimeError)
            raise ConversionError(
                f"converting model {model.name!r} to TFLite ({mode.value}) failed: {type(e).__name__}: {_converter_reason(e)}"
            ) from e
        data = out.read_bytes()

    if mode is Quantization.INT8:
        _check_full_integer(data, model.name)
    if tgt is Target.EDGETPU:
        _report_edgetpu(data, model.name)
    if path is not None:
        atomic_write_bytes(path, data)
    return data


def _check_full_integer(data: bytes, name: str) -> None:
    """Refuse an "int8" result in which some op still computes in float.

    Quantize/Dequantize ops at the float inputs/outputs are allowed (float I/O
    was asked for); any other op with a float tensor means the model was not
    fully quantized (e.g. a QAT model with a layer left in float and no
    calibration data for it).
    """
    from edgetpu.model import read_model

    sg = read_model(data).main
    for op in sg.operators:
        if op.op in ("QUANTIZE", "DEQUANTIZE"):
            continue
        floats = [sg.tensors[i].name for i in (*op.inputs, *op.outputs) if i >= 0 and sg.tensors[i].dtype.startswith("float")]
        if floats:
            raise ConversionError(
                f"model {name!r}: quantization='int8' expects every op in int8, but op {op.index} ({op.op}) "
                f"computes in float (tensor {floats[0]!r}); give representative_data so the converter can "
                "calibrate the layers that were left unquantized"
            )


def _converter_reason(e: Exception) -> str:
    """The converter's own reason, without its MLIR dumps: its "error:" lines and the unsupported-op list."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    keep: list[str] = []
    for line in lines:
        if "error: " in line:
            text = line.split("error: ", 1)[1].strip()
        elif line.startswith("TF Select ops:") or "not supported by the native TFLite runtime" in line:
            text = line
        else:
            continue
        if text and text not in keep and not text.startswith("failed while converting"):
            keep.append(text)
    return " | ".join(keep[:4]) if keep else " | ".join(lines[-3:])


def _report_edgetpu(data: bytes, name: str) -> None:
    """Log what `edgetpu.check` says of a conversion meant for the Edge TPU."""
    try:
        from edgetpu.compat import check
    except ImportError:  # pragma: no cover - edgetpu ships with keras_compress
        return
    result = check(data)
    if result.cut_index is None and not result.warnings:
        log.info("%s: all %d ops map to the Edge TPU", name, len(result.ops))
        return
    for w in result.warnings:
        log.warning("%s: %s", name, w)
    if result.cut_index is not None:
        op = result.ops[result.cut_index]
        log.warning(
            "%s: op %d (%s) will not run on the Edge TPU: %s. It and everything after it run on the CPU "
            "(%.0f%% of ops mapped).",
            name,
            op.index,
            op.op,
            op.reason,
            100 * result.fraction_mapped,
        )
