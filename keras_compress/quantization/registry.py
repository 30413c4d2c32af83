"""Which layers and operations quantize how: the per-layer config of the default int8 scheme.

Layers are matched by their exact class, as tfmot does: a subclass of
``Dense`` is not a ``Dense`` here (its ``call`` may do anything). A custom
layer opts in with a :class:`~keras_compress.quantization.QuantizeConfig`
passed to ``quantize_annotate_layer(layer, quantize_config=...)``.

==============  ==============================================  =====================================
kind            layers                                          what QAT does (TFLite int8 ops)
==============  ==============================================  =====================================
KERNEL          Conv1D, Conv2D (groups too), DepthwiseConv2D,   fake-quant the kernel(s) (per output
                SeparableConv2D, Dense, EinsumDense (also       channel for convs, per tensor for
                inside a pruning wrapper)                       Dense / EinsumDense), fold a following
                                                                BatchNormalization, range on output
EMBEDDING       Embedding                                       fake-quant the table; GATHER keeps it
RELU            ReLU (max 6 or none), Activation relu / relu6   range on the output; the producer
                                                                before it gets none (fused)
AFFINE          BatchNormalization not after a conv/dense,      ``x * a + b`` as MUL / ADD / SUB with a
                Rescaling, Normalization, ConvNeXt LayerScale   range after each
LAYER_NORM      LayerNormalization                              MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL
                                                                (and gamma / beta), a range after each
ATTENTION       MultiHeadAttention                              FULLY_CONNECTED / BATCH_MATMUL,
                                                                SOFTMAX, a range after each
RECURRENT       GRU, LSTM (static sequence length)              unrolled: FULLY_CONNECTED, ADD, MUL,
                                                                SUB, LOGISTIC, TANH, a range after each
OUTPUT          Add, Subtract, Multiply, Maximum, Minimum,      range on the output (a fixed one for
                Concatenate (its producers share its range),    sigmoid / tanh / softmax)
                GlobalAveragePooling1D/2D, Softmax, LeakyReLU,
                PReLU, Activation (see ``activations``)
PASSTHROUGH     InputLayer, MaxPooling, AveragePooling,         nothing: TFLite keeps the input's
                GlobalMaxPooling, Reshape, Flatten, Permute,    scale (same-scale ops) or removes
                ZeroPadding, Cropping, UpSampling2D (nearest,   the layer (dropout, noise)
                bilinear),
                Dropout and other training-only layers,
                Identity, Activation("linear")
==============  ==============================================  =====================================

Keras operations that are not layers (``x + 3.0``, ``x * (1 / 6)``,
``ops.reshape``...) are nodes of the graph too: :func:`kind_of_op`.

Anything else raises :class:`~keras_compress.errors.QuantizationError`
unless it is left in float by name.

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

from keras_compress.quantization import activations as A
from keras_compress.quantization import quantizers as Q
from keras_compress.quantization.recurrent import recurrent_reason

__all__ = [
    "SUPPORTED",
    "Kind",
    "activation_name",
    "call_reason",
    "is_relu_like",
    "kernel_layer",
    "kind_of",
    "kind_of_op",
    "output_quantizer",
    "unquantizable_reason",
    "weight_quantizer",
]

_L = keras.layers
activation_name = A.activation_name


class Kind(str, enum.Enum):
    KERNEL = "kernel"
    EMBEDDING = "embedding"
    RELU = "relu"
    AFFINE = "affine"
    LAYER_NORM = "layer_norm"
    ATTENTION = "attention"
    RECURRENT = "recurrent"
    OUTPUT = "output"
    PASSTHROUGH = "passthrough"
    CUSTOM = "custom"


_KERNEL = (_L.Conv1D, _L.Conv2D, _L.DepthwiseConv2D, _L.SeparableConv2D, _L.Dense, _L.EinsumDense)
# A BatchNormalization right after one of these folds into its kernel.
FOLDABLE = (_L.Conv1D, _L.Conv2D, _L.DepthwiseConv2D, _L.SeparableConv2D, _L.Dense)

_OUTPUT = (
    _L.Add,
    _L.Subtract,
    _L.Multiply,
    _L.Maximum,
    _L.Minimum,
    _L.Concatenate,
    _L.GlobalAveragePooling1D,
    _L.GlobalAveragePooling2D,
    _L.Softmax,
    _L.LeakyReLU,
    _L.PReLU,
    _L.ReLU,
)

_AFFINE = (_L.BatchNormalization, _L.Rescaling, _L.Normalization)
# ConvNeXt's LayerScale (x * gamma per channel) lives in a private Keras module
# with no public class to compare with: matched by its qualified name.
_AFFINE_NAMES = ("keras.src.applications.convnext.LayerScale",)

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
    _L.RepeatVector,
    _L.Dropout,
    _L.SpatialDropout1D,
    _L.SpatialDropout2D,
    _L.GaussianNoise,
    _L.GaussianDropout,
    _L.AlphaDropout,
    _L.ActivityRegularization,
    _L.Identity,
)

_BY_CLASS = {
    **{c: Kind.KERNEL for c in _KERNEL},
    **{c: Kind.OUTPUT for c in _OUTPUT},
    **{c: Kind.AFFINE for c in _AFFINE},
    **{c: Kind.PASSTHROUGH for c in _PASSTHROUGH},
    _L.Embedding: Kind.EMBEDDING,
    _L.LayerNormalization: Kind.LAYER_NORM,
    _L.MultiHeadAttention: Kind.ATTENTION,
    _L.GRU: Kind.RECURRENT,
    _L.LSTM: Kind.RECURRENT,
}

SUPPORTED = tuple(sorted({c.__name__ for c in _BY_CLASS} | {"Activation", "UpSampling2D", "LayerScale"}))


def _qualname(layer) -> str:
    return f"{type(layer).__module__}.{type(layer).__name__}"


def kernel_layer(layer):
    """The kernel layer inside ``layer`` (itself, or the layer a pruning wrapper holds), or None."""
    inner = getattr(layer, "layer", None)
    if inner is not None and type(layer).__name__ == "PruneLowMagnitude":
        layer = inner
    return layer if type(layer) in _KERNEL else None


def is_relu_like(layer) -> bool:
    """ReLU that TFLite fuses into the op before it: plain ReLU or ReLU6."""
    if type(layer) is _L.ReLU:
        mv = layer.max_value
        return float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0 and (mv is None or float(mv) == 6.0)
    if type(layer) is _L.Activation:
        return A.kind_of_activation(layer.activation) == "fused"
    return False


def kind_of(layer) -> Kind | None:
    """The :class:`Kind` of ``layer`` (exact classes only), or None when it cannot be quantized."""
    k = kernel_layer(layer)
    if k is not None:
        if getattr(k, "data_format", "channels_last") != "channels_last":
            return None
        return Kind.KERNEL if A.kind_of_activation(getattr(k, "activation", None)) is not None else None
    if is_relu_like(layer):
        return Kind.RELU
    if type(layer) is _L.Activation:
        act = A.kind_of_activation(layer.activation)
        return None if act is None else Kind.PASSTHROUGH if act == "linear" else Kind.OUTPUT
    if type(layer) is _L.UpSampling2D:  # RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR keep the input's scale
        return Kind.PASSTHROUGH if layer.interpolation in ("nearest", "bilinear") else None
    if _qualname(layer) in _AFFINE_NAMES:
        return Kind.AFFINE
    if type(layer) is _L.MultiHeadAttention and _attention_reason(layer):
        return None
    if type(layer) in (_L.GRU, _L.LSTM) and recurrent_reason(layer):
        return None
    return _BY_CLASS.get(type(layer))


def _attention_reason(layer) -> str | None:
    config = layer.get_config()
    if config.get("use_gate"):
        return "a gated MultiHeadAttention (use_gate=True) is not simulated"
    if config.get("attention_axes") not in (None, [1], (1,), [-2], (-2,)):
        return f"attention over axes {config.get('attention_axes')} is not simulated (only the sequence axis)"
    return None


def unquantizable_reason(layer) -> str:
    """Why :func:`kind_of` returned None, and what to do about it."""
    k = kernel_layer(layer)
    base = next((c for c in type(layer).__mro__[1:] if c in _BY_CLASS or c is _L.Activation), None)
    if k is not None and getattr(k, "data_format", "channels_last") != "channels_last":
        return f"expected data_format='channels_last', found {k.data_format!r}"
    if k is not None or type(layer) is _L.Activation:
        return A.unsupported_reason((k or layer).activation)
    if type(layer) is _L.MultiHeadAttention:
        return _attention_reason(layer)
    if type(layer) in (_L.GRU, _L.LSTM):
        return recurrent_reason(layer)
    if type(layer) is _L.UpSampling2D:
        return f"interpolation {layer.interpolation!r} has no int8 TFLite resize (only 'nearest' and 'bilinear')"
    if isinstance(layer, keras.Model):
        return "expected a layer, found a subclassed model (its graph cannot be read)"
    if base is not None:
        return (
            f"it subclasses {base.__name__}, whose int8 form may not match its call(); "
            "give it a QuantizeConfig with quantize_annotate_layer(layer, quantize_config=...)"
        )
    return (
        f"expected one of {', '.join(SUPPORTED)}, or a custom layer annotated with "
        "quantize_annotate_layer(layer, quantize_config=...)"
    )


_MASK_KWARGS = ("mask", "attention_mask", "query_mask", "value_mask", "key_mask", "initial_state")


def call_reason(layer, tensor_kwargs: set, kwargs: dict) -> str | None:
    """Why this call of ``layer`` cannot be quantized although the layer can, or None.

    ``tensor_kwargs``: names of the keyword arguments that are tensors (masks, states).
    """
    masked = tensor_kwargs & set(_MASK_KWARGS)
    if type(layer) is _L.GlobalAveragePooling1D and "mask" in masked:
        return "a masked average divides by the mask's count, and TFLite has no int8 DIV kernel"
    if type(layer) is _L.MultiHeadAttention and (masked or kwargs.get("use_causal_mask")):
        return f"attention masks ({', '.join(sorted(masked)) or 'use_causal_mask'}) are not simulated"
    if type(layer) in (_L.GRU, _L.LSTM) and masked:
        return f"recurrent layers are simulated without {' / '.join(sorted(masked))}"
    return None


def weight_quantizer(layer) -> Q.Quantizer:
    """Per output channel for convolution kernels, per tensor for Dense / EinsumDense / Embedding.

    Per-channel Dense kernels make the TFLite converter fail ("'tfl.transpose'
    op has mismatched quantized axes").
    """
    k = kernel_layer(layer)
    if k is None or type(k) in (_L.Dense, _L.EinsumDense):
        return Q.LastValueQuantizer(per_axis=False)
    return Q.LastValueQuantizer(per_axis=True, axis=-1)


def output_quantizer(layer) -> Q.Quantizer:
    """Fixed range for softmax / sigmoid / tanh outputs, a learned range otherwise."""
    if type(layer) is _L.Softmax:
        return Q.FixedRangeQuantizer.for_activation("softmax")
    act = getattr(kernel_layer(layer) or layer, "activation", None)
    if act is not None and (type(layer) is _L.Activation or kernel_layer(layer) is not None):
        fixed = Q.FixedRangeQuantizer.for_activation(A.activation_name(act))
        if fixed is not None:
            return fixed
    return Q.MovingAverageQuantizer()


# ------------------------------------------------------------------ operations

_OP_OUTPUT = {"Add", "Subtract", "Multiply", "Maximum", "Minimum", "Matmul", "Einsum", "Mean", "Sum", "Concatenate"}
_OP_FIXED = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax"}
_OP_RANGED = {"Gelu", "Silu", "HardSilu", "LeakyRelu", "Exp", "LogSoftmax"}
_OP_RELU = {"Relu", "Relu6"}
_OP_PASSTHROUGH = {
    "Reshape", "Transpose", "ExpandDims", "Squeeze", "GetItem", "Max", "Min", "Pad", "Stack",
    "Flatten", "Ravel", "Identity", "StopGradient", "Cast",
}  # fmt: skip
# Rewritten to an op with an int8 kernel: -x as x * -1 (TFLite keeps NEG in float), x**2 as x * x.
_OP_REWRITE = {"Negative", "Square", "Divide", "TrueDivide"}
_OP_FLOAT = {
    "Abs": "ABS", "Sqrt": "SQRT", "Log": "LOG", "Power": "POW", "Erf": "ERF", "Cumsum": "CUMSUM",
    "Sort": "TOPK_V2", "Argmax": "ARG_MAX", "Argmin": "ARG_MIN",
}  # fmt: skip


def kind_of_op(class_name: str, tensor_args: int) -> tuple[Kind | None, str | None]:
    """(kind, extra) of a Keras operation node; extra: fixed-range activation name or ``"rewrite"``.

    ``tensor_args`` is how many of its arguments are tensors (``x + 3.0``: 1).
    Returns ``(None, reason)`` when it has no int8 form.
    """
    if class_name in _OP_RELU:
        return Kind.RELU, None
    if class_name in _OP_FIXED:
        return Kind.OUTPUT, _OP_FIXED[class_name]
    if class_name in _OP_OUTPUT or class_name in _OP_RANGED:
        return Kind.OUTPUT, None
    if class_name in _OP_PASSTHROUGH:
        return Kind.PASSTHROUGH, None
    if class_name in _OP_REWRITE:
        if class_name in ("Divide", "TrueDivide") and tensor_args > 1:
            return None, "a division by a tensor: TFLite has no int8 DIV kernel"
        return Kind.OUTPUT, "rewrite"
    if class_name in _OP_FLOAT:
        return None, f"TFLite's int8 graph keeps its {_OP_FLOAT[class_name]} op in float"
    return None, "an operation whose int8 TFLite form is not known here"
