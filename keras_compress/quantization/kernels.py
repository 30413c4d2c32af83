"""QAT forward passes of layers with kernels, as TFLite's int8 kernels compute them.

One scheme object per :class:`~keras_compress.quantization.QuantizeWrapper`:

- :class:`KernelScheme`: Conv1D (run as the CONV_2D TFLite makes of it, so its
  kernel can be quantized per channel), Conv2D (grouped too),
  DepthwiseConv2D, SeparableConv2D (a DEPTHWISE_CONV_2D and a CONV_2D, each
  kernel quantized per channel, a range on the depthwise output), Dense and
  EinsumDense (per-tensor kernels: per-channel ones make the converter fail).
  A following BatchNormalization is folded into the (pointwise) kernel
  exactly as the converter folds it; the layer's activation gets the ranges
  TFLite's int8 op needs (:mod:`~keras_compress.quantization.activations`).
- :class:`EmbeddingScheme`: the table quantized per tensor; the GATHER output
  keeps the table's scale (no range of its own).

BatchNorm folding in training: the convolution runs once, with the kernel
folded by the *moving* statistics and fake-quantized; its output is then
renormalised with the batch statistics (``gamma * sign(s) * (y - mean(y)) /
sqrt(var(y) + eps * s**2) + beta`` where ``s = gamma / sqrt(moving_var +
eps)``), which equals BatchNorm in training up to the kernel's rounding, and
the moving statistics are updated from ``mean(y) / s`` and ``var(y) / s**2``.
In inference (and in the exported graph) the output is the folded
convolution itself. A BatchNormalization with ``trainable=False`` always uses
its moving statistics.

Example:
    >>> import keras, numpy as np
    >>> from keras_compress.quantization import QuantizeWrapper
    >>> conv = keras.layers.Conv1D(4, 3, padding="causal")
    >>> w = QuantizeWrapper(conv)
    >>> tuple(w(np.ones((2, 8, 3), "float32")).shape), type(w.scheme).__name__
    ((2, 8, 4), 'KernelScheme')
"""

from __future__ import annotations

import keras
from keras import ops

from keras_compress.quantization import activations as A
from keras_compress.quantization import clusters
from keras_compress.quantization import quantizers as Q
from keras_compress.quantization import registry

__all__ = ["ActivationQuant", "EmbeddingScheme", "KernelScheme"]

_L = keras.layers


class ActivationQuant:
    """The ranges an activation needs in TFLite's int8 graph.

    ``pre``: a range on the activation's input (False when the input already
    carries one, as for an Activation layer after another op).
    """

    def __init__(self, fn, *, pre: bool):
        self.fn = fn
        self.kind = A.kind_of_activation(fn)
        self.pre = pre and self.kind in ("fixed", "ranged", "decomposed")
        self.pre_q = Q.MovingAverageQuantizer() if self.pre else None
        self.mid_q = Q.MovingAverageQuantizer() if self.kind == "decomposed" else None
        self._pre_vars, self._mid_vars = {}, {}

    def build(self, layer):
        if self.pre_q is not None:
            self._pre_vars = self.pre_q.build(None, "pre_activation", layer)
        if self.mid_q is not None:
            self._mid_vars = self.mid_q.build(None, "hard_sigmoid_mid", layer)

    def __call__(self, y, training):
        if self.kind == "linear":
            return y
        if self.pre_q is not None:
            y = self.pre_q(y, training, self._pre_vars)
        if self.kind == "decomposed":  # hard_sigmoid: ADD with a fused ReLU6, a range, then MUL
            return A.hard_sigmoid_tail(self.mid_q(A.hard_sigmoid_parts(y), training, self._mid_vars))
        return self.fn(y)


def _per_channel_4d(quantizer, kernel):
    """Per-output-channel quantization of a kernel whose last axis is not the output channel alone."""
    shape = kernel.shape
    flat = ops.reshape(kernel, tuple(shape[:-2]) + (shape[-2] * shape[-1],))
    return ops.reshape(quantizer(flat, True, {}), shape)


class KernelScheme:
    """Conv / Dense / EinsumDense with fake-quantized kernels and an optional folded BatchNormalization."""

    def __init__(self, wrapper):
        self.w = wrapper
        self.k = registry.kernel_layer(wrapper.layer)
        self.separable = type(self.k) is _L.SeparableConv2D
        self.act = ActivationQuant(getattr(self.k, "activation", None), pre=True)
        self.mid_q = Q.MovingAverageQuantizer() if self.separable else None
        self._mid_vars = {}
        self.masks = {}
        self.clusters = {}  # kernel name -> centroid variable (preserve_clusters)

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        self.act.build(self.w)
        if self.mid_q is not None:
            self._mid_vars = self.mid_q.build(None, "depthwise_output", self.w)
        if self.w.preserve_sparsity:
            for name in self.kernel_names():
                kernel = self.raw(name)
                mask = self.w.add_weight(
                    name=f"{name}_sparsity_mask", shape=tuple(kernel.shape), initializer="ones", trainable=False
                )
                mask.assign(ops.cast(ops.not_equal(kernel, 0.0), mask.dtype))
                self.masks[name] = mask
        if self.w.preserve_clusters:
            self.clusters = clusters.add_centroids(self, self.w.preserve_clusters)

    def kernel_names(self):
        return ("depthwise_kernel", "pointwise_kernel") if self.separable else ("kernel",)

    def is_depthwise(self, name):
        return name == "depthwise_kernel" or type(self.k) is _L.DepthwiseConv2D

    def raw(self, name, clustered=True):
        """A kernel variable as the layer uses it (times its pruning mask under a pruning wrapper; clustered)."""
        kernel = ops.convert_to_tensor(getattr(self.k, name))
        outer = self.w.layer
        if outer is not self.k:
            from keras_compress.pruning.wrapper import prunable_weight_spec

            names = (prunable_weight_spec(self.k) or ((),))[0]
            if name in names:
                kernel = kernel * ops.cast(outer.masks[list(names).index(name)], kernel.dtype)
        if name in self.masks:
            kernel = kernel * ops.cast(self.masks[name], kernel.dtype)
        if clustered and name in self.clusters:
            kernel = clusters.clustered(kernel, self.clusters[name], self.w.preserve_sparsity)
        return kernel

    # ---------------------------------------------------------------- forward
    def quantize(self, name, kernel):
        q = self.w.weight_quantizer
        if self.is_depthwise(name):  # per (input channel, multiplier) pair
            return _per_channel_4d(q, kernel)
        if type(self.k) is _L.Conv1D:  # the 4-D kernel of the CONV_2D TFLite runs
            return q(ops.expand_dims(kernel, 0), True, {})
        return q(kernel, True, {})

    def op(self, x, kernel, training):
        """The kernel op on ``x`` (for SeparableConv2D, from the depthwise op on)."""
        k = self.k
        if self.separable:
            dw = self.quantize("depthwise_kernel", self.raw("depthwise_kernel"))
            d = ops.depthwise_conv(x, dw, strides=k.strides, padding=k.padding, dilation_rate=k.dilation_rate)
            return ops.conv(self.mid_q(d, training, self._mid_vars), kernel, padding="valid")
        if type(k) is _L.DepthwiseConv2D:
            return ops.depthwise_conv(x, kernel, strides=k.strides, padding=k.padding, dilation_rate=k.dilation_rate)
        if type(k) is _L.Conv1D:
            return _conv1d_as_2d(k, x, kernel)
        if type(k) is _L.Conv2D:
            return k.convolution_op(x, kernel)
        if type(k) is _L.EinsumDense:
            return ops.einsum(k.equation, x, kernel)
        return ops.matmul(x, kernel)

    def out_kernel_name(self):
        return self.kernel_names()[-1]

    def scale_kernel(self, kernel, s):
        """Multiplies the (output) kernel by ``s`` per output channel."""
        if self.is_depthwise(self.out_kernel_name()):
            *_, cin, mult = kernel.shape
            return kernel * ops.reshape(s, (1, 1, cin, mult))
        return kernel * s

    def call(self, x, training):
        if training and self.clusters:
            clusters.refresh(self)
        name = self.out_kernel_name()
        kernel = self.raw(name)
        bias = ops.convert_to_tensor(self.k.bias) if getattr(self.k, "bias", None) is not None else None
        bn = self.w.batch_norm
        if bn is None:
            y = self.op(x, self.quantize(name, kernel), training)
            return self.act(y if bias is None else y + bias, training)
        return self.act(self.folded(x, kernel, bias, bn, training), training)

    def folded(self, x, kernel, bias, bn, training):
        gamma, beta, mean, var = bn_params(bn)
        s = gamma / ops.sqrt(var + bn.epsilon)
        name = self.out_kernel_name()
        y = self.op(x, self.quantize(name, self.scale_kernel(kernel, s)), training)
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


def bn_params(bn):
    """(gamma, beta, moving mean, moving variance) of a BatchNormalization, ones / zeros where it has none."""
    var = ops.convert_to_tensor(bn.moving_variance)
    mean = ops.convert_to_tensor(bn.moving_mean)
    gamma = ops.convert_to_tensor(bn.gamma) if bn.scale else ops.ones_like(var)
    beta = ops.convert_to_tensor(bn.beta) if bn.center else ops.zeros_like(var)
    return gamma, beta, mean, var


def _conv1d_as_2d(k, x, kernel):
    """Conv1D as TFLite runs it (EXPAND_DIMS, CONV_2D, SQUEEZE), so a per-channel kernel converts."""
    (size,), (stride,), (dilation,) = k.kernel_size, k.strides, k.dilation_rate
    padding = k.padding
    if padding == "causal":
        x = ops.pad(x, [(0, 0), ((size - 1) * dilation, 0), (0, 0)])
        padding = "valid"
    y = ops.conv(ops.expand_dims(x, 1), kernel, strides=(1, stride), padding=padding, dilation_rate=(1, dilation))
    return ops.squeeze(y, 1)


class EmbeddingScheme:
    """Embedding: the table fake-quantized per tensor; GATHER keeps its scale."""

    def __init__(self, wrapper):
        self.w = wrapper
        self.layer = wrapper.layer

    def build(self, input_shape):
        pass

    def call(self, ids, training):
        table = self.w.weight_quantizer(ops.convert_to_tensor(self.layer.embeddings), True, {})
        if keras.backend.standardize_dtype(ids.dtype) not in ("int32", "int64"):
            ids = ops.cast(ids, "int32")
        return ops.take(table, ids, axis=0)
