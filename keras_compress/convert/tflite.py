"""Keras 3 model -> TFLite flatbuffer, in every TFLite mode: :func:`to_tflite`.

One step per function: check the arguments and the destination, gather the
calibration samples, convert (in this process, or in a separate one when the
conversion is known to crash TF's converter), check the result (full integer,
runtime op versions, Edge TPU mapping), write it atomically. Input shapes are
made static (batch 1 by default): XNNPACK and the Edge TPU compiler both want
static shapes. How the converter is run is in
:mod:`keras_compress.convert.converter`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keras_compress.convert.calibration import calibration_samples
from keras_compress.convert.checks import check_full_integer
from keras_compress.convert.converter import convert_in_process
from keras_compress.convert.layers import is_qat_model
from keras_compress.convert.options import ConversionOptions, Quantization, Target
from keras_compress.convert.recurrent import crash_risks, fusable_lstm_names
from keras_compress.convert.runtime import check_min_runtime
from keras_compress.errors import CalibrationDataError, ConversionError

__all__ = ["Quantization", "Target", "is_qat_model", "to_tflite"]

log = logging.getLogger("keras_compress")


def _destination(path) -> Path | None:
    """The checked output path: ends in .tflite, not a folder, parent not a file, not read-only."""
    if path is None:
        return None
    dest = Path(path)
    if dest.suffix.lower() != ".tflite":
        raise ConversionError(f"{dest}: the output must end in .tflite (refusing to write a model to {dest.suffix or 'a name without suffix'!r})")
    if dest.is_dir():
        raise ConversionError(f"{dest}: is a directory; expected a .tflite file path")
    parent = next((p for p in dest.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConversionError(f"{dest}: {parent} is a file, not a directory")
    if dest.exists() and (not os.access(dest, os.W_OK) or not dest.stat().st_mode & 0o222):  # root ignores modes
        raise ConversionError(f"{dest}: exists and is read-only; refusing to replace it")
    return dest


def _samples(model, opts: ConversionOptions, data: Any):
    """Calibration samples for the calibrated modes (None when QAT ranges stand in for them)."""
    if not getattr(model, "inputs", None):
        raise ConversionError(f"model {getattr(model, 'name', model)!r} has no defined inputs: build it (call it once "
                              "on data or use keras.Input) before converting")
    if not opts.mode.calibrated:
        return None
    if data is not None:
        return calibration_samples(model, data, opts.num_calibration_samples)
    if opts.mode is Quantization.INT8 and is_qat_model(model):
        return None
    raise CalibrationDataError(
        f"quantization={opts.mode.value!r} needs representative_data (a few hundred typical inputs of shape "
        f"{tuple(model.inputs[0].shape[1:])}) unless the model was quantization-aware trained"
    )


def _convert(model, opts: ConversionOptions, samples, isolate: bool | None) -> bytes:
    """In this process, or in a separate one when the conversion is known to crash (or ``isolate=True``)."""
    from keras_compress.convert.isolation import convert_isolated

    risks = []
    if opts.mode.calibrated:
        risks = crash_risks(model, fused=fusable_lstm_names(model, opts.batch_size), batch_size=opts.batch_size)
    if isolate is None:
        isolate = bool(risks)
    if isolate:
        return convert_isolated(model, opts, samples, risks)
    return convert_in_process(model, opts, samples)


def _convert_lowbit(model, opts: ConversionOptions, samples, isolate: bool | None) -> bytes:
    """A float32 flatbuffer from TF's converter, then AI Edge Quantizer's 4-bit weights on it (checked)."""
    import dataclasses

    from keras_compress.convert.lowbit import aeq_quantize, check_lowbit, weight_bits, weighted_ops

    from keras_compress.quantization.lowbit import float_export, qat_weight_bits

    int8_layers = opts.int8_layers
    if is_qat_model(model) and int8_layers is None:  # the bits it was trained with
        int8_layers = [n for n, b in qat_weight_bits(model).items() if b == 8]
    float_opts = dataclasses.replace(opts, mode=Quantization.FLOAT32, int8_layers=None)
    with float_export():  # a QAT model traces as a float model holding its fake-quantized weights
        float_blob = _convert(model, float_opts, None, isolate)
    names = [w.layer for w in weighted_ops(float_blob, model)]
    if opts.int8_layers is None and int8_layers is not None:  # the QAT model's 8-bit layers that have a weighted op
        int8_layers = [n for n in int8_layers if n in names]
    bits = weight_bits(names, int8_layers)
    activations = 8 if opts.mode is Quantization.INT4_INT8 else None
    data, bits = aeq_quantize(float_blob, model, bits, activations=activations, samples=samples, verbose=opts.verbose)
    check_lowbit(data, model, bits, activations=activations)
    log.info("%s: %s, %d bytes (float32: %d); 8-bit layers: %s", model.name, opts.mode.value, len(data),
             len(float_blob), [n for n, b in bits.items() if b == 8])
    return data


def _refuse_lowbit_qat(model, quantization) -> None:
    """A QAT model with 4-bit kernels exports only through AEQ (TF's converter has no 4-bit FakeQuant route)."""
    from keras_compress.quantization.lowbit import exporting_float, is_lowbit_qat

    mode = str(getattr(quantization, "value", quantization))
    if mode not in ("int4_weights", "int4_int8") and not exporting_float() and is_qat_model(model) \
            and is_lowbit_qat(model):
        raise ConversionError(f"model {model.name!r} was trained with 4-bit weights (quantize_model(weight_bits=4)); "
                              f"convert it with quantization='int4_weights' or 'int4_int8', not {quantization!r}")


def _check_result(data: bytes, model, opts: ConversionOptions, calibrated: bool) -> None:
    if opts.mode is Quantization.INT8:
        check_full_integer(data, model, calibrated=calibrated, float_layers=opts.float_layers)
    if opts.min_runtime is not None:
        check_min_runtime(data, opts.min_runtime, model.name)
    if opts.target is Target.EDGETPU:
        _report_edgetpu(data, model.name)


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
    min_runtime: str | None = None,
    float_layers: Sequence[str] | bool = (),
    isolate: bool | None = None,
    verbose: bool = True,
    int8_layers: Sequence[str] | None = None,
) -> bytes:
    """Convert a Keras 3 model to a TFLite flatbuffer.

    Args:
        model: a built Keras 3 model (Sequential, Functional or subclassed with
            known inputs). Pruning wrappers should be stripped first.
        path: where to write the model; must end in ``.tflite`` (a ``.keras`` model is
            never overwritten). Written atomically; nothing is written if conversion fails.
        quantization: ``"float32"``, ``"float16"``, ``"dynamic"``, ``"int8"`` (full
            integer), ``"int16x8"``; through AI Edge Quantizer (CPU runtimes only,
            :mod:`keras_compress.convert.lowbit`): ``"int4_weights"`` (float activations)
            or ``"int4_int8"`` (int8 activations and I/O, calibrated).
        representative_data: calibration inputs for ``"int8"``, ``"int16x8"`` and ``"int4_int8"``:
            an array ``(N, *input_shape)``, a list of arrays for several inputs,
            a ``tf.data.Dataset`` or an iterable of batches; finite values only.
            Not needed for a quantization-aware-trained model.
        num_calibration_samples: how many samples of ``representative_data`` to use.
        input_type / output_type: I/O dtype. ``"int8"`` mode: ``"int8"`` (default),
            ``"uint8"`` or ``"float32"``; ``"int16x8"``: ``"int16"`` or ``"float32"``;
            other modes float32. Integer inputs (token ids) stay int32 in every mode.
        target: ``None``/``"cpu"`` or ``"edgetpu"`` (``"int8"``, batch 1; logs what
            :func:`edgetpu.check` says will not map). Fusable LSTMs become UNIDIRECTIONAL_SEQUENCE_LSTM.
        per_channel: per-channel weight quantization (default); ``False`` forces per-tensor.
        batch_size: static batch (default 1); ``None`` keeps it dynamic (not for the Edge TPU).
        min_runtime: oldest TF Lite runtime that must run the model, e.g. ``"2.14"``:
            converted to op versions it has, or refused naming the op, version and release.
        float_layers: ``"int8"`` mode: Keras layers allowed to stay float (``True``: any).
        isolate: convert in a child process, where a crash is a :class:`ConversionError`.
            ``None`` (default): only int8 / int16x8 of GRU, SimpleRNN, unfusable LSTM.
        verbose: show calibration progress.
        int8_layers: 4-bit modes: layers kept at 8 bits. ``None``: the first and last
            weighted layers (a 4-bit QAT model: the bits it was trained with); ``()``: none.

    Returns:
        The ``.tflite`` flatbuffer bytes.

    Raises:
        ConversionError: bad arguments, a converter failure or crash, a float op in an
            int8 result, an op too new for ``min_runtime``.
        CalibrationDataError: calibration data missing, non-finite or of the wrong shape/dtype.

    Example:
        >>> import keras, numpy as np
        >>> from keras_compress.convert import to_tflite
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> blob = to_tflite(m, quantization="int8", representative_data=np.random.rand(16, 8), verbose=False)
        >>> blob[4:8]
        b'TFL3'
    """
    _refuse_lowbit_qat(model, quantization)
    opts = ConversionOptions.build(
        quantization=quantization, target=target, input_type=input_type, output_type=output_type,
        per_channel=per_channel, batch_size=batch_size, num_calibration_samples=num_calibration_samples,
        min_runtime=min_runtime, float_layers=float_layers, verbose=verbose, int8_layers=int8_layers,
    )
    dest = _destination(path)
    samples = _samples(model, opts, representative_data)
    data = (_convert_lowbit if opts.mode.lowbit else _convert)(model, opts, samples, isolate)
    _check_result(data, model, opts, calibrated=samples is not None)
    if dest is not None:
        _write(dest, data)
    return data


def _write(dest: Path, data: bytes) -> None:
    # edgetpu's public writer: temp file + rename, umask-respecting.
    from edgetpu import atomic_write_bytes

    atomic_write_bytes(dest, data)


def _report_edgetpu(data: bytes, name: str) -> None:
    """Log what `edgetpu.check` says of a conversion meant for the Edge TPU."""
    from edgetpu import check

    result = check(data)
    if result.cut_index is None and not result.warnings:
        log.info("%s: all %d ops map to the Edge TPU", name, len(result.ops))
        return
    for w in result.warnings:
        log.warning("%s: %s", name, w)
    if result.cut_index is not None:
        op = result.ops[result.cut_index]
        log.warning(
            "%s: op %d (%s) will not run on the Edge TPU: %s. It and the ops that depend on it run on the CPU "
            "(%.0f%% of ops mapped).",
            name, op.index, op.op, op.reason, 100 * result.fraction_mapped,
        )
