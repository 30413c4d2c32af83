"""Which layers quantize how: the per-layer config of the default int8 scheme.

Every layer falls in one :class:`Kind`:

==============  ==============================================  =====================================
kind            layers                                          what QAT does
==============  ==============================================  =====================================
KERNEL          Conv2D, DepthwiseConv2D, Dense                  fake-quant the kernel (per output
                (also inside a pruning wrapper)                 channel for convs, per tensor for
                                                                Dense), fold a following BatchNorm,
                                                                range on the output
RELU            ReLU (max 6 or none), Activation relu / relu6   range on the output; the producer
                                                                before it gets none (fused)
OUTPUT          Add, Subtract, Multiply, Average, Maximum,      range on the output (TFLite gives
                Minimum, Concatenate (its producers get no      these ops their own scale)
                range of their own), GlobalAveragePooling,
                BatchNormalization not after a conv,
                Rescaling, Activation, Softmax, LeakyReLU,
                PReLU, ELU
PASSTHROUGH     InputLayer, MaxPooling, AveragePooling,         nothing: TFLite keeps the input's
                GlobalMaxPooling, Reshape, Flatten,             scale (same-scale ops) or removes
                ZeroPadding, Cropping,
                UpSampling (nearest), Permute, Dropout and      the layer (dropout, noise)
                other training-only layers, Identity
==============  ==============================================  =====================================

Anything else raises :class:`~keras_compress.errors.QuantizationError` unless
it is left in float by name.

Example:
    >>> import keras
    >>> from keras_compress.quantization.registry import kind_of, Kind
    >>> kind_of(keras.layers.Conv2D(4, 3)) is Kind.KERNEL
    True
    >>> kind_of(keras.layers.ReLU(6.0)) is Kind.RELU
    True
"""

from __future__ import annotations

import enum

import keras

from keras_compress.quantization import quantizers as Q

__all__ = ["SUPPORTED", "Kind", "activation_name", "kernel_layer", "kind_of", "weight_quantizer"]

_L = keras.layers


class Kind(str, enum.Enum):
    KERNEL = "kernel"
    RELU = "relu"
    OUTPUT = "output"
    PASSTHROUGH = "passthrough"


_KERNEL = (_L.Conv2D, _L.DepthwiseConv2D, _L.Dense)

_OUTPUT = (
    _L.Add,
    _L.Subtract,
    _L.Multiply,
    _L.Average,
    _L.Maximum,
    _L.Minimum,
    _L.Concatenate,
    _L.GlobalAveragePooling1D,
    _L.GlobalAveragePooling2D,
    _L.BatchNormalization,
    _L.Rescaling,
    _L.Activation,
    _L.Softmax,
    _L.LeakyReLU,
    _L.PReLU,
    _L.ELU,
    _L.ReLU,
)

_PASSTHROUGH = (
    _L.InputLayer,
    _L.MaxPooling1D,
    _L.MaxPooling2D,
    _L.AveragePooling1D,
    _L.AveragePooling2D,
    _L.GlobalMaxPooling1D,
    _L.GlobalMaxPooling2D,
    _L.Reshape,
    _L.Flatten,
    _L.ZeroPadding1D,
    _L.ZeroPadding2D,
    _L.Cropping1D,
    _L.Cropping2D,
    _L.Permute,
    _L.Dropout,
    _L.SpatialDropout1D,
    _L.SpatialDropout2D,
    _L.GaussianNoise,
    _L.GaussianDropout,
    _L.AlphaDropout,
    _L.ActivityRegularization,
    _L.Identity,
)

SUPPORTED = tuple(c.__name__ for c in _KERNEL + _OUTPUT + _PASSTHROUGH) + ("UpSampling2D",)


def kernel_layer(layer):
    """The Conv2D / DepthwiseConv2D / Dense inside ``layer`` (itself, or the layer a pruning wrapper holds)."""
    inner = getattr(layer, "layer", None)
    if inner is not None and type(layer).__name__ == "PruneLowMagnitude":
        layer = inner
    return layer if isinstance(layer, _KERNEL) else None


def activation_name(fn) -> str | None:
    """Name of a Keras activation function (``keras.activations.relu`` -> ``"relu"``)."""
    if fn is None:
        return None
    try:
        return keras.activations.serialize(fn)
    except Exception:  # a lambda or custom callable
        return getattr(fn, "__name__", None)


def is_relu_like(layer) -> bool:
    """ReLU that TFLite fuses into the op before it: plain ReLU or ReLU6."""
    if isinstance(layer, _L.ReLU):
        mv = layer.max_value
        return (
            float(layer.negative_slope) == 0.0
            and float(layer.threshold) == 0.0
            and (mv is None or float(mv) == 6.0)
        )
    if isinstance(layer, _L.Activation):
        return activation_name(layer.activation) in ("relu", "relu6")
    return False


def kind_of(layer) -> Kind | None:
    """The :class:`Kind` of ``layer``, or None when it cannot be quantized."""
    if kernel_layer(layer) is not None:
        k = kernel_layer(layer)
        if getattr(k, "data_format", "channels_last") != "channels_last":
            return None
        return Kind.KERNEL
    if is_relu_like(layer):
        return Kind.RELU
    if isinstance(layer, _OUTPUT):
        return Kind.OUTPUT
    if isinstance(layer, _PASSTHROUGH):
        return Kind.PASSTHROUGH
    if isinstance(layer, _L.UpSampling2D) and layer.interpolation == "nearest":
        return Kind.PASSTHROUGH
    return None


def unquantizable_reason(layer) -> str:
    k = kernel_layer(layer)
    if k is not None and getattr(k, "data_format", "channels_last") != "channels_last":
        return f"expected data_format='channels_last', found {k.data_format!r}"
    if isinstance(layer, keras.Model):
        return "expected a layer, found a nested model (quantize it on its own, or leave it in float)"
    return f"expected one of {', '.join(sorted(set(SUPPORTED)))}"


def weight_quantizer(layer) -> Q.Quantizer:
    """Per output channel for convolution kernels, per tensor for Dense.

    Per-channel Dense kernels make the TFLite converter fail ("'tfl.transpose'
    op has mismatched quantized axes").
    """
    k = kernel_layer(layer)
    if isinstance(k, _L.Dense):
        return Q.LastValueQuantizer(per_axis=False)
    return Q.LastValueQuantizer(per_axis=True, axis=-1)


def output_quantizer(layer) -> Q.Quantizer:
    """Fixed range for softmax / sigmoid / tanh outputs, a learned range otherwise."""
    if isinstance(layer, _L.Softmax):
        return Q.FixedRangeQuantizer.for_activation("softmax")
    if isinstance(layer, _L.Activation):
        fixed = Q.FixedRangeQuantizer.for_activation(activation_name(layer.activation))
        if fixed is not None:
            return fixed
    return Q.MovingAverageQuantizer()
