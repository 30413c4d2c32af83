"""`quantize_model`, `quantize_annotate_layer`, `quantize_apply`: the QAT entry points.

The names and the flow are tfmot's::

    qat = quantize_model(float_model)                 # every layer
    # or: annotate some layers while building the model, then
    qat = quantize_apply(annotated_model)             # only those

The result is a new Functional model (its own copy of the weights) whose
layers simulate int8 as the TFLite kernels compute it. Train it with plain
``model.fit``, save it as ``.keras``, and convert it with
``keras_compress.convert.to_tflite(qat, quantization="int8")``: no
representative data is needed, the ranges come from training.

The rewrite itself (BatchNorm folding, ReLU fusion, shared Concatenate
ranges, Keras operations and nested models) is in
:mod:`~keras_compress.quantization.transform`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import keras

from keras_compress.errors import GraphError, QuantizationError
from keras_compress.graph import as_functional, clone_model, is_nested_model
from keras_compress.quantization.config import QuantizeConfig
from keras_compress.quantization.transform import quantize_graph
from keras_compress.quantization.wrapper import (
    QuantizeAnnotate,
    QuantizeLayer,
    QuantizeWrapper,
)

__all__ = ["quantize_annotate_layer", "quantize_annotate_model", "quantize_apply", "quantize_model", "quantize_scope"]

_L = keras.layers


def quantize_scope(*args):
    """A ``keras.saving.custom_object_scope`` with the QAT classes and ``args``' dicts (tfmot's).

    Our classes are registered with Keras, so a saved QAT model loads without
    it; it is there for custom layers and QuantizeConfigs that are not.

    Example:
        >>> import keras
        >>> class MyConfig: pass
        >>> with quantize_scope({"MyConfig": MyConfig}):
        ...     keras.saving.get_registered_object("MyConfig") is MyConfig
        True
    """
    from keras_compress.quantization import quantizers as Q

    objects = {
        "QuantizeAnnotate": QuantizeAnnotate,
        "QuantizeLayer": QuantizeLayer,
        "QuantizeWrapper": QuantizeWrapper,
        "LastValueQuantizer": Q.LastValueQuantizer,
        "MovingAverageQuantizer": Q.MovingAverageQuantizer,
        "FixedRangeQuantizer": Q.FixedRangeQuantizer,
    }
    for extra in args:
        objects.update(extra)
    return keras.saving.custom_object_scope(objects)


def quantize_annotate_layer(to_annotate, quantize_config: QuantizeConfig | None = None):
    """Marks one layer for quantization by :func:`quantize_apply`.

    Args:
        to_annotate: a Keras layer (not yet called), used in place of the layer
            when building the model. An ``input_shape`` given to it is kept.
        quantize_config: how to quantize it (a
            :class:`~keras_compress.quantization.QuantizeConfig`); None: the
            default scheme of the layer's class. Custom layers, and subclasses
            of built-in ones, need one.

    Returns:
        A :class:`QuantizeAnnotate` wrapping the layer.

    Example:
        >>> import keras
        >>> from keras_compress.quantization import quantize_annotate_layer, quantize_apply
        >>> inp = keras.Input((8, 8, 1))
        >>> x = quantize_annotate_layer(keras.layers.Conv2D(4, 3))(inp)
        >>> x = keras.layers.Flatten()(x)
        >>> out = keras.layers.Dense(2)(x)  # stays float
        >>> qat = quantize_apply(keras.Model(inp, out))
        >>> [type(l).__name__ for l in qat.layers][1:3]
        ['QuantizeLayer', 'QuantizeWrapper']
    """
    if not isinstance(to_annotate, keras.layers.Layer) or isinstance(to_annotate, keras.Model):
        raise QuantizationError(
            f"quantize_annotate_layer: expected a keras layer, found {type(to_annotate).__name__}"
        )
    if quantize_config is not None and not isinstance(quantize_config, QuantizeConfig):
        raise QuantizationError(
            f"quantize_annotate_layer: quantize_config must be a QuantizeConfig, found {type(quantize_config).__name__}"
        )
    if isinstance(to_annotate, QuantizeAnnotate):
        return to_annotate
    return QuantizeAnnotate(to_annotate, quantize_config=quantize_config)


def quantize_annotate_model(to_annotate):
    """Annotates every layer of a model (what :func:`quantize_model` quantizes).

    Lambda layers are left out with a warning, as tfmot does (their
    computation cannot be read from their config). Layers of nested models
    are annotated too. The result is not compiled (tfmot removes the optimizer).

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
        >>> [type(l).__name__ for l in quantize_annotate_model(m).layers]
        ['QuantizeAnnotate']
    """
    model = _checked(to_annotate)

    def annotate(layer):
        if isinstance(layer, (_L.InputLayer, QuantizeAnnotate)) or is_nested_model(layer):
            return layer
        if type(layer) is _L.Lambda:
            warnings.warn(
                f"layer '{layer.name}' (Lambda) is not annotated: a Lambda's computation cannot be read from "
                "its config; write it as a custom layer with a QuantizeConfig to quantize it",
                stacklevel=3,
            )
            return layer
        return QuantizeAnnotate(layer)

    return clone_model(model, annotate)


def quantize_model(
    to_quantize,
    *,
    float_layers: Iterable[str] = (),
    preserve_sparsity: bool = False,
    weight_bits: int = 8,
    int8_layers: Iterable[str] | None = None,
    preserve_clusters: bool = False,
):
    """Makes a quantization-aware copy of a Keras 3 model (int8 TFLite scheme).

    Args:
        to_quantize: a built Sequential or Functional model (float, pruned-and
            stripped, or still wrapped by ``prune_low_magnitude``). Nested
            Sequential / Functional models are inlined into the result.
        float_layers: names of layers (or Keras operations) to leave in float;
            use it for layers this scheme cannot quantize. ``to_tflite`` then
            needs ``representative_data`` to calibrate the ranges around them.
        preserve_sparsity: keep every kernel's zeros exactly zero during QAT
            (pruning-preserving QAT: prune, strip, then quantize).
        weight_bits: 4: Conv2D / Conv1D / Dense kernels trained on AI Edge
            Quantizer's 4-bit grid (see :mod:`keras_compress.quantization.lowbit`);
            convert with ``to_tflite(..., quantization="int4_weights")`` or ``"int4_int8"``.
        int8_layers: with ``weight_bits=4``, kernel layers kept at 8 bits
            (None: the first and last).
        preserve_clusters: keep a clustered model's clusters (cluster, strip,
            then quantize; with ``preserve_sparsity`` too after pruning): each
            int8 kernel then holds at most as many values per output channel
            as there were clusters (see :mod:`~keras_compress.quantization.clusters`).

    Returns:
        A new Functional model with its own copy of the weights.

    Raises:
        QuantizationError: a layer that cannot be quantized (its name, type
            and the reason are in the message), an unknown name in
            ``float_layers``, or a model without known inputs.

    Example:
        >>> import keras
        >>> from keras_compress.quantization import quantize_model
        >>> m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
        ...                       keras.layers.BatchNormalization(), keras.layers.ReLU(),
        ...                       keras.layers.Flatten(), keras.layers.Dense(2)])
        >>> [type(l).__name__ for l in quantize_model(m).layers]
        ['InputLayer', 'QuantizeLayer', 'QuantizeWrapper', 'QuantizeWrapper', 'Flatten', 'QuantizeWrapper']
    """
    qat = _quantize(
        to_quantize, annotated_only=False, float_layers=float_layers, preserve_sparsity=preserve_sparsity,
        preserve_clusters=preserve_clusters,
    )
    if weight_bits != 8 or int8_layers is not None:
        from keras_compress.quantization.lowbit import set_weight_bits

        set_weight_bits(qat, weight_bits, None if int8_layers is None else list(int8_layers))
    return qat


def quantize_apply(model, *, float_layers: Iterable[str] = (), preserve_sparsity: bool = False):
    """Quantizes the layers annotated with :func:`quantize_annotate_layer`; the rest stays float.

    Arguments as :func:`quantize_model`.

    Raises:
        QuantizationError: no layer is annotated (as tfmot), or as :func:`quantize_model`.
    """
    model = _checked(model)
    if not any(isinstance(layer, QuantizeAnnotate) for layer in _all_layers(model)):
        raise QuantizationError(
            f"quantize_apply: model '{model.name}' has no layer annotated with quantize_annotate_layer / "
            "quantize_annotate_model: there is nothing to quantize (quantize_model quantizes every layer)"
        )
    return _quantize(model, annotated_only=True, float_layers=float_layers, preserve_sparsity=preserve_sparsity)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if is_nested_model(layer):
            yield from _all_layers(layer)


def _checked(model):
    """``model`` if it is a built Sequential or Functional model; a QuantizationError otherwise."""
    try:
        as_functional(model)
    except GraphError as e:
        raise QuantizationError(str(e)) from None
    return model


def _quantize(model, *, annotated_only, float_layers, preserve_sparsity, preserve_clusters=False):
    model = _checked(model)
    try:
        return quantize_graph(
            model, annotated_only=annotated_only, float_layers=float_layers, preserve_sparsity=preserve_sparsity,
            preserve_clusters=preserve_clusters,
        )
    except GraphError as e:
        raise QuantizationError(str(e)) from None
