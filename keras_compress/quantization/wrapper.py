"""Layers that simulate int8 in training: `QuantizeWrapper`, `QuantizeLayer`, `QuantizeAnnotate`.

:class:`QuantizeWrapper` holds a layer and runs it as the int8 TFLite kernel
will. For a Conv2D / DepthwiseConv2D / Dense (possibly inside a pruning
wrapper) it computes the op itself from the fake-quantized kernel, with a
following BatchNormalization folded in (``w * gamma / sqrt(var + eps)``,
``beta + (b - mean) * gamma / sqrt(var + eps)``) exactly as the converter
folds it; for other layers it calls the layer. Its output then goes through an
activation quantizer, unless a ReLU follows that TFLite will fuse.

BatchNorm folding in training: the convolution runs once, with the kernel
folded by the *moving* statistics and fake-quantized; its output is then
renormalised with the batch statistics (``gamma * sign(s) * (y - mean(y)) /
sqrt(var(y) + eps * s**2) + beta`` where ``s = gamma / sqrt(moving_var +
eps)``), which equals BatchNorm in training up to the kernel's rounding, and
the moving statistics are updated from ``mean(y) / s`` and ``var(y) / s**2``.
In inference (and in the exported graph) the output is the folded
convolution itself, as the int8 kernel computes it. A BatchNormalization with
``trainable=False`` always uses its moving statistics.

Every layer here has the class attribute ``kc_fake_quant = True``, by which
:func:`keras_compress.convert.to_tflite` knows the model carries its own
ranges.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_compress.errors import QuantizationError
from keras_compress.quantization import quantizers as Q
from keras_compress.quantization import registry

__all__ = ["QuantizeAnnotate", "QuantizeLayer", "QuantizeWrapper"]

_PACKAGE = "keras_compress.quantization"
_L = keras.layers


def _deserialize_layer(config, custom_objects=None):
    if config is None or isinstance(config, keras.layers.Layer):
        return config
    return keras.saving.deserialize_keras_object(config, custom_objects=custom_objects)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizeLayer(keras.layers.Layer):
    """Fake-quantizes a float tensor (a model input, or the output of a float layer).

    Example:
        >>> import numpy as np
        >>> layer = QuantizeLayer()
        >>> y = layer(np.linspace(0, 1, 5, dtype="float32")[None], training=True)
        >>> float(layer.weights[1].numpy())  # learned max
        1.0
    """

    kc_fake_quant = True

    def __init__(self, quantizer=None, **kwargs):
        super().__init__(**kwargs)
        self.quantizer = Q.get(quantizer) or Q.MovingAverageQuantizer()
        self._qvars = {}

    def build(self, input_shape):
        self._qvars = self.quantizer.build(input_shape, "input", self)
        self.built = True

    def call(self, inputs, training=None):
        return self.quantizer(inputs, bool(training), self._qvars)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["quantizer"] = Q.serialize(self.quantizer)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizeAnnotate(keras.layers.Wrapper):
    """Marks a layer to be quantized by :func:`quantize_apply`; behaves as the layer.

    Made by :func:`~keras_compress.quantization.quantize_annotate_layer`.
    """

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("name", f"quant_annotate_{layer.name}")
        super().__init__(layer, **kwargs)

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, *args, **kwargs):
        return self.layer(inputs, *args, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizeWrapper(keras.layers.Layer):
    """Runs ``layer`` with simulated int8 weights and output.

    Usually made by :func:`~keras_compress.quantization.quantize_model`.

    Args:
        layer: the layer to quantize (see :mod:`~keras_compress.quantization.registry`).
        batch_norm: a BatchNormalization that follows a Conv2D / DepthwiseConv2D
            ``layer``, folded into it.
        quantize_output: put an activation range on the output (False when a
            ReLU follows that TFLite fuses into this op).
        preserve_sparsity: keep the kernel's zeros at zero (a mask taken when
            the wrapper is built; pruning-preserving QAT).
        weight_quantizer / output_quantizer: override the registry's choice.

    Example:
        >>> import keras, numpy as np
        >>> w = QuantizeWrapper(keras.layers.Dense(3))
        >>> tuple(w(np.ones((2, 4), "float32")).shape)
        (2, 3)
    """

    kc_fake_quant = True

    def __init__(
        self,
        layer,
        batch_norm=None,
        quantize_output=True,
        preserve_sparsity=False,
        weight_quantizer=None,
        output_quantizer=None,
        **kwargs,
    ):
        kind = registry.kind_of(layer)
        if kind is None or kind is registry.Kind.PASSTHROUGH:
            raise QuantizationError(
                f"layer '{layer.name}' ({type(layer).__name__}) cannot be quantized: {registry.unquantizable_reason(layer)}"
            )
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(**kwargs)
        self.layer = layer
        self.kind = kind
        self.batch_norm = batch_norm
        if batch_norm is not None:
            if not isinstance(registry.kernel_layer(layer), (_L.Conv2D, _L.DepthwiseConv2D)):
                raise QuantizationError(
                    f"layer '{layer.name}' ({type(layer).__name__}): BatchNormalization folding needs a Conv2D or DepthwiseConv2D"
                )
            if not isinstance(batch_norm, _L.BatchNormalization):
                raise QuantizationError(
                    f"batch_norm: expected a BatchNormalization, found '{batch_norm.name}' ({type(batch_norm).__name__})"
                )
        self.quantize_output = bool(quantize_output)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.weight_quantizer = Q.get(weight_quantizer) if weight_quantizer is not None else (
            registry.weight_quantizer(layer) if kind is registry.Kind.KERNEL else None
        )
        self.output_quantizer = Q.get(output_quantizer) if output_quantizer is not None else registry.output_quantizer(layer)
        self._kernel_layer = registry.kernel_layer(layer)
        self._pre_quantizer = None
        self._act = None
        if self._kernel_layer is not None:
            name = registry.activation_name(self._kernel_layer.activation)
            if name not in (None, "linear"):
                if batch_norm is not None:
                    raise QuantizationError(
                        f"layer '{layer.name}' ({type(layer).__name__}) has activation {name!r} before its BatchNormalization: "
                        "expected a linear conv to fold"
                    )
                self._act = self._kernel_layer.activation
                fixed = Q.FixedRangeQuantizer.for_activation(name)
                if name not in ("relu", "relu6"):
                    # A range for the op's own output, then the activation's.
                    self._pre_quantizer = Q.MovingAverageQuantizer()
                    if output_quantizer is None and fixed is not None:
                        self.output_quantizer = fixed
        self._out_vars = {}
        self._pre_vars = {}

    @property
    def layers(self):
        """The wrapped layers (so callbacks that look for nested wrappers find them)."""
        return [self.layer] + ([self.batch_norm] if self.batch_norm is not None else [])

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.batch_norm is not None and not self.batch_norm.built:
            self.batch_norm.build(self.layer.compute_output_shape(input_shape))
        if self.quantize_output:
            self._out_vars = self.output_quantizer.build(None, "output", self)
        if self._pre_quantizer is not None:
            self._pre_vars = self._pre_quantizer.build(None, "pre_activation", self)
        self.sparsity_mask = None
        if self.preserve_sparsity and self._kernel_layer is not None:
            kernel = self._raw_kernel()
            self.sparsity_mask = self.add_weight(
                name="sparsity_mask",
                shape=tuple(kernel.shape),
                initializer=keras.initializers.Constant(1.0),
                trainable=False,
            )
            self.sparsity_mask.assign(ops.cast(ops.not_equal(kernel, 0.0), self.sparsity_mask.dtype))
        self.built = True

    def _raw_kernel(self):
        k = self._kernel_layer
        kernel = ops.convert_to_tensor(k.kernel)
        if k is not self.layer:  # pruning wrapper: its mask applies
            kernel = ops.multiply(kernel, ops.cast(self.layer.masks[0], kernel.dtype))
        return kernel

    # ---------------------------------------------------------------- forward
    def _bn_params(self):
        bn = self.batch_norm
        var = ops.convert_to_tensor(bn.moving_variance)
        mean = ops.convert_to_tensor(bn.moving_mean)
        gamma = ops.convert_to_tensor(bn.gamma) if bn.scale else ops.ones_like(var)
        beta = ops.convert_to_tensor(bn.beta) if bn.center else ops.zeros_like(var)
        return gamma, beta, mean, var

    def _scale_kernel(self, kernel, s):
        """Multiplies the kernel by ``s`` per output channel."""
        if isinstance(self._kernel_layer, _L.DepthwiseConv2D):
            _, _, cin, mult = kernel.shape
            return kernel * ops.reshape(s, (1, 1, cin, mult))
        return kernel * s

    def _quantize_kernel(self, kernel):
        if isinstance(self._kernel_layer, _L.DepthwiseConv2D):
            # Per output channel = per (input channel, multiplier) pair.
            kh, kw, cin, mult = kernel.shape
            flat = ops.reshape(kernel, (kh, kw, cin * mult))
            return ops.reshape(self.weight_quantizer(flat, True, {}), (kh, kw, cin, mult))
        return self.weight_quantizer(kernel, True, {})

    def _apply_kernel_op(self, x, kernel):
        k = self._kernel_layer
        if isinstance(k, _L.DepthwiseConv2D):
            return ops.depthwise_conv(
                x, kernel, strides=k.strides, padding=k.padding, data_format=k.data_format, dilation_rate=k.dilation_rate
            )
        if isinstance(k, _L.Conv2D):
            return k.convolution_op(x, kernel)
        return ops.matmul(x, kernel)

    def _kernel_forward(self, x, training):
        k = self._kernel_layer
        kernel = self._raw_kernel()
        if self.sparsity_mask is not None:
            kernel = kernel * ops.cast(self.sparsity_mask, kernel.dtype)
        bias = ops.convert_to_tensor(k.bias) if k.use_bias else None
        bn = self.batch_norm
        if bn is None:
            y = self._apply_kernel_op(x, self._quantize_kernel(kernel))
            return y if bias is None else y + bias
        gamma, beta, mean, var = self._bn_params()
        s = gamma / ops.sqrt(var + bn.epsilon)
        y = self._apply_kernel_op(x, self._quantize_kernel(self._scale_kernel(kernel, s)))
        if bias is not None:
            y = y + bias * s  # the folded conv before the BatchNorm's shift
        if training and bn.trainable:
            axes = list(range(len(y.shape) - 1))
            y_mean, y_var = ops.moments(y, axes=axes)
            out = (gamma * ops.sign(s)) * (y - y_mean) * ops.rsqrt(y_var + bn.epsilon * ops.square(s)) + beta
            ok = ops.abs(s) > 1e-12
            safe_s = ops.where(ok, s, ops.ones_like(s))
            batch_mean = ops.where(ok, ops.stop_gradient(y_mean) / safe_s, mean)
            batch_var = ops.where(ok, ops.stop_gradient(y_var) / ops.square(safe_s), var)
            m = bn.momentum
            bn.moving_mean.assign(mean * m + batch_mean * (1.0 - m))
            bn.moving_variance.assign(var * m + batch_var * (1.0 - m))
            return out
        return y + (beta - mean * s)

    def call(self, inputs, training=None):
        training = bool(training)
        if self._kernel_layer is not None:
            y = self._kernel_forward(inputs, training)
            if self._act is not None:
                if self._pre_quantizer is not None:
                    y = self._pre_quantizer(y, training, self._pre_vars)
                y = self._act(y)
        else:
            y = self.layer(inputs, training=training) if _takes_training(self.layer) else self.layer(inputs)
        if self.quantize_output:
            y = self.output_quantizer(y, training, self._out_vars)
        return y

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    # ---------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "batch_norm": keras.saving.serialize_keras_object(self.batch_norm) if self.batch_norm is not None else None,
                "quantize_output": self.quantize_output,
                "preserve_sparsity": self.preserve_sparsity,
                "weight_quantizer": Q.serialize(self.weight_quantizer),
                "output_quantizer": Q.serialize(self.output_quantizer),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = _deserialize_layer(config["layer"], custom_objects)
        config["batch_norm"] = _deserialize_layer(config.get("batch_norm"), custom_objects)
        return cls(**config)


def _takes_training(layer) -> bool:
    import inspect

    try:
        return "training" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False
