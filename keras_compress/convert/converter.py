"""Running TF's TFLite converter on a Keras 3 model: settings, the two routes, errors.

Two routes give the same flatbuffer (same ops, sizes and ``serving_default``
signature):

- direct, in memory: trace ``model.__call__`` (training=False) as a
  ``tf.function`` with a static input signature and hand the concrete
  function to ``TFLiteConverter.from_concrete_functions`` together with a
  ``tf.Module`` holding the variables it reads;
- export: Keras's own LiteRT export (``model.export(path, format="litert")``:
  ExportArchive -> SavedModel on disk -> ``from_saved_model``), which loads the
  SavedModel twice and costs 1.3-1.5x the direct route.

``TFLiteConverter.from_keras_model`` broke for Keras 3 in several TF releases
(tensorflow#63867), so which route this TF/Keras pair supports is decided once
per process by converting a two-layer model (:func:`direct_route_works`).

Example:
    >>> import keras
    >>> from keras_compress.convert.converter import direct_route_works, input_signature
    >>> direct_route_works()
    True
    >>> m = keras.Sequential([keras.Input((8,), dtype="int32"), keras.layers.Embedding(10, 2)])
    >>> input_signature(m, 1)
    [TensorSpec(shape=(1, 8), dtype=tf.int32, name='keras_tensor...')]
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path
from typing import Any

from keras_compress.convert.calibration import is_integer_dtype, representative_dataset
from keras_compress.convert.interrupts import deferred_sigint
from keras_compress.convert.options import ConversionOptions, Quantization
from keras_compress.convert.recurrent import with_fused_lstms
from keras_compress.convert.runtime import dense_per_channel_allowed
from keras_compress.errors import CompressError, ConversionError

__all__ = ["convert_in_process", "converter_reason", "converter_settings", "direct_route_works", "input_signature"]

log = logging.getLogger("keras_compress")


def input_signature(model, batch_size: int | None) -> list:
    """``[spec]`` (one input) or ``[[spec, ...]]``: static batch, each input's own dtype (int32 token ids stay int32)."""
    import tensorflow as tf

    if not getattr(model, "inputs", None):
        raise ConversionError(
            f"model {getattr(model, 'name', model)!r} has no defined inputs: build it (call it once on data or use "
            "keras.Input) before converting"
        )
    specs = [
        tf.TensorSpec((batch_size, *t.shape[1:]), tf.int32 if is_integer_dtype(t.dtype) else tf.float32,
                      name=getattr(t, "name", None))
        for t in model.inputs
    ]
    return [specs[0]] if len(specs) == 1 else [specs]


def _private_flags(opts: ConversionOptions) -> dict:
    """Converter attributes with no public equivalent (TF 2.21 has no public per-tensor switch).

    ``_experimental_disable_per_channel``: per-tensor weights everywhere
    (``per_channel=False``). ``_experimental_disable_per_channel_quantization_for_dense_layers``:
    per-tensor Dense weights only, which keeps dynamic-range FULLY_CONNECTED at
    version 9 instead of 12 for runtimes older than TF Lite 2.17.
    """
    flags = {}
    if not opts.per_channel:
        flags["_experimental_disable_per_channel"] = True
    if not dense_per_channel_allowed(opts.mode.value, opts.min_runtime):
        flags["_experimental_disable_per_channel_quantization_for_dense_layers"] = True
    return flags


def converter_settings(model, opts: ConversionOptions, samples) -> dict:
    """Converter attributes for ``opts`` (``target_spec`` as a dict), as Keras's LiteRT export takes them."""
    import tensorflow as tf

    mode = opts.mode
    ops = {
        Quantization.FLOAT16: tf.lite.OpsSet.TFLITE_BUILTINS,
        Quantization.INT16X8: tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
        # A QAT model without calibration data: TFLite's front end refuses TFLITE_BUILTINS_INT8 without a
        # representative dataset before it looks at the graph; the FakeQuant ranges still make every op int8,
        # which the full-integer check verifies after conversion.
        Quantization.INT8: tf.lite.OpsSet.TFLITE_BUILTINS if samples is None else tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
    }.get(mode, tf.lite.OpsSet.TFLITE_BUILTINS)
    kwargs: dict[str, Any] = {"target_spec": {"supported_ops": [ops]}}
    if mode is Quantization.FLOAT16:
        kwargs["target_spec"]["supported_types"] = [tf.float16]
    if mode is not Quantization.FLOAT32:
        kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if mode.calibrated:
        has_float_input = not all(is_integer_dtype(t.dtype) for t in model.inputs)
        if opts.input_type != "float32" and has_float_input:
            kwargs["inference_input_type"] = tf.as_dtype(opts.input_type)
        if opts.output_type != "float32":
            kwargs["inference_output_type"] = tf.as_dtype(opts.output_type)
        if samples is not None:
            kwargs["representative_dataset"] = representative_dataset(samples, opts.verbose)
    return {**kwargs, **_private_flags(opts)}


def _apply(converter, settings: dict):
    for attr, value in settings.items():
        if attr == "target_spec":
            for key, v in value.items():
                setattr(converter.target_spec, key, v)
        else:
            setattr(converter, attr, value)
    return converter


def _convert_direct(model, signature, settings: dict) -> bytes:
    import tensorflow as tf

    # autograph=False as in Keras's export (and no autograph sources written to the temp dir)
    fn = tf.function(functools.partial(model.__call__, training=False), input_signature=signature, autograph=False)
    concrete = fn.get_concrete_function()
    holder = tf.Module()
    holder.captured_variables = list(concrete.variables)  # the converter saves them with the function
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    converter.experimental_enable_resource_variables = True  # as Keras's LiteRT export sets it
    _apply(converter, settings)
    with deferred_sigint():
        return converter.convert()


def _convert_via_export(model, signature, settings: dict) -> bytes:
    with tempfile.TemporaryDirectory(prefix="kc_convert_") as tmp:
        out = Path(tmp) / "model.tflite"
        with deferred_sigint():  # saving the SavedModel, then the converter
            model.export(str(out), format="litert", input_signature=signature, verbose=False, **settings)
        return out.read_bytes()


def _served(data: bytes) -> bool:
    """True when the flatbuffer has the ``serving_default`` signature (its inputs are named after it).

    TF's concrete-function route silently falls back to a frozen graph without
    signatures when it cannot save the function (e.g. an untracked lookup table).
    """
    from edgetpu.model import read_model

    sg = read_model(data).main
    return all(sg.tensors[i].name.startswith("serving_default_") for i in sg.inputs)


@functools.lru_cache(maxsize=1)
def direct_route_works() -> bool:
    """Whether this TF/Keras pair converts a Keras model in memory (decided once per process)."""
    import keras
    import tensorflow as tf

    # A named layer built without symbolic tensors: no automatic Keras name (dense_1, keras_tensor_1, ...)
    # of the user's own layers and tensors changes because of the probe.
    probe = keras.layers.Dense(2, name="kc_probe")
    probe.build((None, 4))
    settings = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    try:
        return _served(_convert_direct(probe, [tf.TensorSpec((1, 4), tf.float32, name="kc_probe_input")], settings))
    except Exception as e:  # noqa: BLE001 - any failure means: use the export route
        log.debug("in-memory conversion unavailable (%s: %s); using Keras's LiteRT export", type(e).__name__, e)
        return False


def _run_routes(model, signature, settings: dict, route: str | None) -> bytes:
    if route == "export":
        return _convert_via_export(model, signature, settings)
    if route == "direct" or direct_route_works():
        data = _convert_direct(model, signature, settings)
        if _served(data):
            return data
        log.debug("in-memory conversion of %r lost its signature; converting through the export route", model.name)
    return _convert_via_export(model, signature, settings)


def convert_in_process(model, opts: ConversionOptions, samples, route: str | None = None) -> bytes:
    """Convert in this process; converter failures become ConversionError, Ctrl-C a KeyboardInterrupt.

    Ctrl-C is held while TF's converter runs (see :mod:`keras_compress.convert.interrupts`)
    and raised when it returns.

    ``route``: ``"direct"``, ``"export"`` or None (the direct route where
    :func:`direct_route_works`); the benchmark and the tests compare the two.
    """
    fused: list[str] = []
    if opts.mode.calibrated:
        model, fused = with_fused_lstms(model, opts.batch_size)
    settings = converter_settings(model, opts, samples)
    try:
        return _run_routes(model, input_signature(model, opts.batch_size), settings, route)
    except CompressError:
        raise
    except Exception as e:  # the converter raises many types (ConverterError, ValueError, RuntimeError)
        reason = converter_reason(e)
        if fused and "UNIDIRECTIONAL_SEQUENCE_LSTM" in reason:
            reason += f" (the fused LSTM of layer(s) {', '.join(map(repr, fused))})"
        raise ConversionError(
            f"converting model {model.name!r} to TFLite ({opts.mode.value}) failed: {type(e).__name__}: {reason}"
        ) from e


def converter_reason(e: BaseException) -> str:
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
