"""QAT forward passes of layers TFLite runs as several int8 ops: one range after each op.

- :class:`AffineScheme`: ``x * a + b`` per channel. A BatchNormalization that
  no conv / dense absorbs (MUL, ADD), ``Rescaling`` (MUL, ADD when it has an
  offset), ``Normalization`` (SUB, MUL) and ConvNeXt's ``LayerScale`` (MUL).
  A BatchNormalization in training normalises with the batch statistics (and
  updates its moving ones); the ranges follow the inference form.
- :class:`LayerNormScheme`: LayerNormalization written with ops that have
  int8 kernels (MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, then MUL / ADD for
  gamma / beta). Keras's own formula has a NEG that TFLite keeps in float.
- :class:`AttentionScheme`: MultiHeadAttention as its projections
  (FULLY_CONNECTED), the scaled query (MUL), the scores (BATCH_MATMUL), the
  softmax (fixed range) and the weighted sum (BATCH_MATMUL).

Example:
    >>> attention_equations(4, (1,))[:2]   # (batch, tokens, heads, channels) projections
    ('aecd,abcd->acbe', 'acbe,aecd->abcd')
"""

from __future__ import annotations

import math
import string

import keras
import numpy as np
from keras import ops

from keras_compress.quantization import quantizers as Q
from keras_compress.quantization.kernels import bn_params

__all__ = ["AffineScheme", "AttentionScheme", "LayerNormScheme"]

_L = keras.layers


class _Ranges:
    """Named moving-average ranges of one wrapper."""

    def __init__(self, wrapper, names):
        self.w = wrapper
        self.names = tuple(names)
        self.q = Q.MovingAverageQuantizer()
        self.vars = {}

    def build(self):
        self.vars = {n: self.q.build(None, n, self.w) for n in self.names}

    def __call__(self, name, x, training):
        return self.q(x, training, self.vars[name])


def affine_steps(layer):
    """The (op, constant) steps TFLite computes for an affine layer: op in "mul", "add", "sub"."""
    if isinstance(layer, _L.BatchNormalization):
        gamma, beta, mean, var = bn_params(layer)
        a = gamma / ops.sqrt(var + layer.epsilon)
        return [("mul", a), ("add", beta - mean * a)]
    if isinstance(layer, _L.Rescaling):
        steps = [("mul", ops.convert_to_tensor(layer.scale, "float32"))]
        if np.any(np.asarray(layer.offset) != 0):
            steps.append(("add", ops.convert_to_tensor(layer.offset, "float32")))
        return steps
    if isinstance(layer, _L.Normalization):
        mean, var = ops.convert_to_tensor(layer.mean), ops.convert_to_tensor(layer.variance)
        std = ops.maximum(ops.sqrt(var), keras.backend.epsilon())
        if layer.invert:
            return [("mul", std), ("add", mean)]
        return [("sub", mean), ("mul", 1.0 / std)]
    return [("mul", ops.convert_to_tensor(layer.gamma))]  # LayerScale


_APPLY = {"mul": ops.multiply, "add": ops.add, "sub": ops.subtract}


class AffineScheme:
    """BatchNormalization / Rescaling / Normalization / LayerScale as MUL / ADD / SUB with ranges."""

    def __init__(self, wrapper):
        self.w = wrapper
        self.layer = wrapper.layer
        self.n_steps = len(affine_steps(self.layer)) if self.layer.built else 2

    def build(self, input_shape):
        self.n_steps = len(affine_steps(self.layer))
        self.ranges = _Ranges(self.w, [f"step{i}" for i in range(self.n_steps - 1)])
        self.ranges.build()

    def call(self, x, training):
        layer = self.layer
        if training and isinstance(layer, _L.BatchNormalization) and layer.trainable:
            steps = affine_steps(layer)
            y = x
            for i, (op, c) in enumerate(steps[:-1]):  # track the inference-time ranges
                y = self.ranges(f"step{i}", _APPLY[op](y, c), True)
            return layer(x, training=True)
        steps = affine_steps(layer)
        y = x
        for i, (op, c) in enumerate(steps):
            y = _APPLY[op](y, c)
            if i < len(steps) - 1:
                y = self.ranges(f"step{i}", y, training)
        return y


class LayerNormScheme:
    """LayerNormalization with a range after each of its int8 ops."""

    NAMES = ("mean", "centered", "square", "variance", "variance_eps", "rsqrt", "normalized", "scaled")

    def __init__(self, wrapper):
        self.w = wrapper
        self.layer = wrapper.layer
        self.ranges = _Ranges(wrapper, self.NAMES)

    def build(self, input_shape):
        self.ranges.build()

    def call(self, x, training):
        layer, r = self.layer, self.ranges
        axis = layer.axis
        if layer.rms_scaling:
            c = x
        else:
            mean = r("mean", ops.mean(x, axis=axis, keepdims=True), training)
            c = r("centered", x - mean, training)
        var = r("variance", ops.mean(r("square", c * c, training), axis=axis, keepdims=True), training)
        inv = r("rsqrt", ops.rsqrt(r("variance_eps", var + layer.epsilon, training)), training)
        y = c * inv
        if layer.gamma is None and layer.beta is None:
            return y
        y = r("normalized", y, training)
        shape = _param_shape(len(x.shape), axis)
        if layer.gamma is not None:
            y = y * ops.reshape(layer.gamma, shape)
            if layer.beta is not None:
                y = r("scaled", y, training)
        if layer.beta is not None:
            y = y + ops.reshape(layer.beta, shape)
        return y


def _param_shape(rank, axis):
    axes = [a % rank for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
    return tuple(-1 if i in axes else 1 for i in range(rank))


def attention_equations(rank: int, attn_axes: tuple):
    """Einsum equations of dot-product attention over projected tensors of rank ``rank``.

    The same equations Keras's MultiHeadAttention builds (its builder is
    private): query-key scores, then the weighted sum of the values.
    """
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch_dims = [i for i in range(rank) if i not in attn_axes and i != rank - 1]
    source, offset = "", rank
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += letters[offset]
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes] + [source[i] for i in attn_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


class AttentionScheme:
    """MultiHeadAttention (no attention mask) with a range after each of its int8 ops."""

    NAMES = ("query", "key", "value", "query_scaled", "scores", "context")

    def __init__(self, wrapper):
        self.w = wrapper
        self.layer = wrapper.layer
        self.ranges = _Ranges(wrapper, self.NAMES)
        self.softmax_q = Q.FixedRangeQuantizer.for_activation("softmax")

    def build(self, input_shape):
        self.ranges.build()

    def project(self, dense, x):
        kernel = self.w.weight_quantizer(ops.convert_to_tensor(dense.kernel), True, {})
        y = ops.einsum(dense.equation, x, kernel)
        return y if dense.bias is None else y + dense.bias

    def call(self, query, training, value=None, key=None, **kwargs):
        for name in ("attention_mask", "query_mask", "value_mask", "key_mask"):
            if kwargs.get(name) is not None:
                raise NotImplementedError(f"{name} is not simulated")
        if kwargs.get("use_causal_mask") or kwargs.get("return_attention_scores"):
            raise NotImplementedError("use_causal_mask / return_attention_scores are not simulated")
        layer, r = self.layer, self.ranges
        value = query if value is None else value
        key = value if key is None else key
        q = r("query", self.project(layer.query_dense, query), training)
        k = r("key", self.project(layer.key_dense, key), training)
        v = r("value", self.project(layer.value_dense, value), training)
        q = r("query_scaled", q * (1.0 / math.sqrt(float(layer.key_dim))), training)
        rank = len(q.shape)
        axes = layer.attention_axes
        axes = tuple(range(1, rank - 2)) if axes is None else tuple(a % (rank - 1) for a in axes)
        dot, combine, scores_rank = attention_equations(rank, axes)
        scores = r("scores", ops.einsum(dot, k, q), training)
        norm_axes = tuple(range(scores_rank - len(axes), scores_rank))
        # (attention dropout, a training-time regularizer, is not applied during QAT)
        probs = self.softmax_q(_softmax(scores, norm_axes), training, {})
        context = r("context", ops.einsum(combine, probs, v), training)
        return self.project(layer.output_dense, context)


def _softmax(x, axes):
    if len(axes) == 1:
        return ops.softmax(x, axis=axes[0])
    return ops.exp(x - ops.logsumexp(x, axis=axes, keepdims=True))
