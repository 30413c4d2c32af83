"""Keras layers seen from a converted model: walking them, and which layer a TFLite tensor came from.

The converter names tensors after the TF name scopes of the traced call, e.g.
``"lnmodel_1/ln_1/Neg"`` for the ``Neg`` inside layer ``ln`` of model
``lnmodel`` (Keras adds ``_1`` to a scope already used while building), and
joins the names of fused ops with ``;``. :func:`layer_of_op` reads those
scopes back to the Keras layer, so that a message about op 3 can say
"layer 'ln' (LayerNormalization)".

Example:
    >>> import keras
    >>> from keras_compress.convert.layers import layer_index, layer_of_tensor
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="head")], name="m")
    >>> layer_of_tensor("m_1/head_1/MatMul;m_1/head_1/BiasAdd", layer_index(m)).name
    'head'
    >>> layer_of_tensor("tfl.quantize", layer_index(m)) is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["is_qat_model", "layer_index", "layer_of_op", "layer_of_tensor", "walk_layers"]

_SCOPE_SUFFIX = re.compile(r"_\d+$")


def walk_layers(model) -> Iterator:
    """Every layer of ``model``, nested models and wrapped layers included (public attributes only)."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from walk_layers(layer)  # a nested model has .layers
        for attr in ("layer", "forward_layer", "backward_layer"):  # Wrapper / Bidirectional
            sub = getattr(layer, attr, None)
            if sub is not None:
                yield sub
                yield from walk_layers(sub)


def is_qat_model(model) -> bool:
    """True when some layer of ``model`` (nested included) simulates quantization.

    Quantization-aware layers declare the class attribute ``kc_fake_quant = True``;
    their trained ranges make calibration data unnecessary.
    """
    return any(getattr(type(layer), "kc_fake_quant", False) for layer in [model, *walk_layers(model)])


def layer_index(model) -> dict:
    """``{name: layer}`` of the layers of ``model`` that compute (nested models left out: they are scopes)."""
    return {layer.name: layer for layer in walk_layers(model) if not hasattr(layer, "layers")}


def layer_of_tensor(name: str, layers: dict):
    """The innermost Keras layer named in a TFLite tensor name's scopes, or None."""
    found = None
    for part in name.split(";"):
        for scope in part.split("/")[:-1] or [part]:
            base = _SCOPE_SUFFIX.sub("", scope)
            layer = layers.get(base) or layers.get(scope)
            if layer is not None:
                found = layer
    return found


def layer_of_op(subgraph, op, layers: dict, depth: int = 4):
    """The Keras layer an operator of a parsed model (``edgetpu.read_model``) came from, or None.

    Looks at the op's outputs, then inputs, then (for ops the converter
    inserted, such as ``tfl.dequantize``) up to ``depth`` producers upstream.
    """
    for i in (*op.outputs, *op.inputs):
        if i >= 0 and (layer := layer_of_tensor(subgraph.tensors[i].name, layers)) is not None:
            return layer
    if depth <= 0:
        return None
    producers = {o: p for p in subgraph.operators for o in p.outputs}
    for i in op.inputs:
        if i in producers and (layer := layer_of_op(subgraph, producers[i], layers, depth - 1)) is not None:
            return layer
    return None
