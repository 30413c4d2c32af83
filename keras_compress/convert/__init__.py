"""Conversion to TFLite and parity checks.

    to_tflite(model, path=None, *, quantization="int8", representative_data=None, ...)
    compare(keras_model, tflite, x) -> {"top1_agreement", "max_abs_error", "sqnr_db", ...}
"""

from keras_compress.convert.compare import compare, sqnr_db
from keras_compress.convert.tflite import Quantization, Target, is_qat_model, to_tflite

__all__ = ["to_tflite", "compare", "sqnr_db", "Quantization", "Target", "is_qat_model"]
