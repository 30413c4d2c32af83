"""Quantization-aware training (QAT) for Keras 3, with tfmot's names.

Moving from tfmot is a change of import::

    from keras_compress import quantization as tfmot_quant   # was tfmot.quantization.keras

    qat = tfmot_quant.quantize_model(float_model)
    qat.compile(optimizer=keras.optimizers.Adam(1e-4), loss=..., metrics=[...])
    qat.fit(x, y, epochs=2)
    blob = keras_compress.convert.to_tflite(qat, quantization="int8")  # no calibration data

The QAT model simulates TFLite's int8 scheme: symmetric narrow-range weights
(per output channel for Conv2D / DepthwiseConv2D, per tensor for Dense),
asymmetric activations with ranges learned by moving averages, BatchNorm folded
into the conv before its kernel is quantized, ReLU / ReLU6 fused into the op
before it. The converter reads the ranges from the ``FakeQuant`` ops and emits a
fully int8 model.

Modules: ``quantizers`` (fake-quant quantizers), ``registry`` (how each layer
type is quantized), ``wrapper`` (QuantizeWrapper, QuantizeLayer,
QuantizeAnnotate), ``quantize`` (quantize_model, quantize_annotate_layer,
quantize_apply), ``recipes`` (PTQ / QAT from a trained float model in one call).
"""

from keras_compress.quantization.config import (
    Default8BitQuantizeConfig,
    OutputOnlyConfig,
    QuantizeConfig,
)
from keras_compress.quantization.quantize import (
    quantize_annotate_layer,
    quantize_annotate_model,
    quantize_apply,
    quantize_model,
    quantize_scope,
)
from keras_compress.quantization.quantizers import (
    FixedRangeQuantizer,
    LastValueQuantizer,
    MovingAverageQuantizer,
    Quantizer,
)
from keras_compress.quantization.recipes import fine_tune_qat
from keras_compress.quantization.wrapper import (
    QuantizeAnnotate,
    QuantizeLayer,
    QuantizeWrapper,
)

__all__ = [
    "Default8BitQuantizeConfig",
    "FixedRangeQuantizer",
    "LastValueQuantizer",
    "MovingAverageQuantizer",
    "OutputOnlyConfig",
    "QuantizeAnnotate",
    "QuantizeConfig",
    "QuantizeLayer",
    "QuantizeWrapper",
    "Quantizer",
    "fine_tune_qat",
    "quantize_annotate_layer",
    "quantize_annotate_model",
    "quantize_apply",
    "quantize_model",
    "quantize_scope",
]
