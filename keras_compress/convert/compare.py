"""Parity between a Keras model and its TFLite conversion."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["compare", "sqnr_db"]


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: 10*log10(sum(ref^2) / sum((ref - test)^2)).

    ``inf`` when the two are identical.
    """
    reference = np.asarray(reference, dtype=np.float64)
    noise = reference - np.asarray(test, dtype=np.float64)
    noise_power = float(np.sum(noise**2))
    signal_power = float(np.sum(reference**2))
    if noise_power == 0.0:
        return float("inf")
    if signal_power == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal_power / noise_power))


def compare(keras_model, tflite: bytes | str | os.PathLike, x: Any, *, num_threads: int | None = None,
            per_layer: bool = False) -> dict:
    """Run ``keras_model`` and the TFLite model on ``x`` and measure how far apart they are.

    The TFLite side runs through :func:`edgetpu.run` (float inputs are quantized
    with the input tensor's scale and zero point, outputs dequantized), so this
    measures what a deployment sees.

    Args:
        keras_model: the float (or QAT) Keras model.
        tflite: the converted model, as bytes or a path.
        x: a batch of inputs, ``(N, *input_shape)``.
        num_threads: interpreter threads.
        per_layer: also ``"per_layer_sqnr_db"``: ``{layer: dB}`` of each Keras layer's
            output against the float32 flatbuffer, by AI Edge Quantizer's validation
            (:func:`keras_compress.convert.lowbit.per_layer_error`; for float-I/O
            models and those AEQ quantized, whose tensors keep the float names).

    Returns:
        ``{"top1_agreement", "max_abs_error", "mean_abs_error", "sqnr_db", "n"}``;
        ``top1_agreement`` is the fraction of samples whose argmax agrees (for
        outputs with more than one class; ``None`` otherwise).
    """
    import edgetpu

    x = np.asarray(x, dtype=np.float32)
    ref = np.asarray(keras_model.predict(x, verbose=0, batch_size=64))
    interp = edgetpu.make_interpreter(tflite, num_threads=num_threads)
    out = np.asarray(edgetpu.run(interp, x))
    if ref.shape != out.shape:
        out = out.reshape(ref.shape)
    diff = np.abs(ref.astype(np.float64) - out.astype(np.float64))
    top1 = None
    if ref.ndim >= 2 and ref.shape[-1] > 1:
        top1 = float(np.mean(ref.reshape(len(ref), -1).argmax(-1) == out.reshape(len(out), -1).argmax(-1)))
    result = {
        "top1_agreement": top1,
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "sqnr_db": sqnr_db(ref, out),
        "n": len(x),
    }
    if per_layer:
        from pathlib import Path

        from keras_compress.convert.lowbit import per_layer_error

        blob = tflite if isinstance(tflite, (bytes, bytearray)) else Path(tflite).read_bytes()
        result["per_layer_sqnr_db"] = per_layer_error(keras_model, blob, x)
    return result
