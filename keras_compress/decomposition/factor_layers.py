"""The two built-in layers that replace a factorized Dense / Conv layer.

``name`` becomes ``name_a`` (no bias, no activation) then ``name_b`` (the
original's bias, activation and bias regularizer/constraint):

- Dense ``(n_in, n_out)``: Dense ``r`` then Dense ``n_out``;
- channel: the original conv with ``r`` filters (same kernel size, strides,
  padding, dilation), then a ``1 x ... x 1`` conv to ``C_out``;
- spatial: a ``k_h x 1`` conv with strides ``(s_h, 1)`` and dilation
  ``(d_h, 1)``, then a ``1 x k_w`` conv with strides ``(1, s_w)`` and
  dilation ``(1, d_w)``, both with the original padding. With ``"same"``
  padding TensorFlow pads each dimension from that dimension's input size,
  kernel, stride and dilation alone, so the pair pads exactly as the original.

Both layers are copies of the original's config with those fields changed, so
dtype policy, initializers, data format and kernel regularizer carry over.
"""

from __future__ import annotations

import keras

from keras_compress.decomposition.plan import LayerPlan
from keras_compress.decomposition.svd import KernelSVD

__all__ = ["factor_layers", "factor_names"]

_BIAS_ONLY = ("bias_regularizer", "bias_constraint", "activity_regularizer")


def factor_names(name: str) -> tuple[str, str]:
    """Names of the two factors of layer ``name``: ``name_a``, ``name_b``."""
    return f"{name}_a", f"{name}_b"


def _configs(layer, plan: LayerPlan) -> tuple[dict, dict]:
    cfg = dict(layer.get_config())
    cfg.pop("lora_rank", None)
    cfg.pop("lora_alpha", None)
    name_a, name_b = factor_names(layer.name)
    a = dict(cfg, name=name_a, activation="linear", use_bias=False)
    a.update({k: None for k in _BIAS_ONLY if k in cfg})
    b = dict(cfg, name=name_b)
    r = plan.rank
    if plan.method == "svd":
        a["units"] = r
        return a, b
    a["filters"] = r
    nd = len(layer.kernel_size)
    if plan.method == "channel":
        b.update(kernel_size=(1,) * nd, strides=(1,) * nd, padding="valid", dilation_rate=(1,) * nd)
        return a, b
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    a.update(kernel_size=(kh, 1), strides=(sh, 1), dilation_rate=(dh, 1))
    b.update(kernel_size=(1, kw), strides=(1, sw), dilation_rate=(1, dw))
    return a, b


def factor_layers(layer, plan: LayerPlan, svd: KernelSVD) -> list[tuple[keras.layers.Layer, list]]:
    """``[(layer_a, weights_a), (layer_b, weights_b)]`` for ``layer`` as ``plan`` says."""
    cfg_a, cfg_b = _configs(layer, plan)
    kernel_a, kernel_b = svd.factors(plan.rank)
    weights_b = [kernel_b]
    if layer.use_bias:
        weights_b.append(keras.ops.convert_to_numpy(layer.bias))
    cls = type(layer)
    return [(cls.from_config(cfg_a), [kernel_a]), (cls.from_config(cfg_b), weights_b)]
