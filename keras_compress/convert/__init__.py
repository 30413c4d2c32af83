"""Conversion to TFLite and parity checks.

    to_tflite(model, path=None, *, quantization="int8", representative_data=None, ...)
    compare(keras_model, tflite, x) -> {"top1_agreement", "max_abs_error", "sqnr_db", ...}

Modules: ``tflite`` (to_tflite, one step per function), ``options`` (checked
arguments), ``calibration`` (representative data), ``converter`` (running TF's
converter: in-memory and export routes), ``isolation`` / ``worker`` (the
converter in a separate process), ``recurrent`` (fused LSTM, crash-prone
layers), ``checks`` (full-integer check naming Keras layers), ``runtime``
(op versions against ``min_runtime``), ``interrupts`` (Ctrl-C), ``layers``
(Keras layers behind TFLite tensors), ``compare``.
"""

from keras_compress.convert.compare import compare, sqnr_db
from keras_compress.convert.tflite import Quantization, Target, is_qat_model, to_tflite

__all__ = ["Quantization", "Target", "compare", "is_qat_model", "sqnr_db", "to_tflite"]
