"""Layers that simulate int8 in training: `QuantizeWrapper`, `QuantizeLayer`, `QuantizeAnnotate`.

:class:`QuantizeWrapper` holds a layer and runs it as TFLite's int8 kernels
will, through the scheme of its kind (:mod:`~keras_compress.quantization.registry`):
kernels fake-quantized and a following BatchNormalization folded in
(:mod:`~keras_compress.quantization.kernels`), layers that TFLite runs as
several ops with a range after each (:mod:`~keras_compress.quantization.composite`),
a custom layer through its :class:`~keras_compress.quantization.QuantizeConfig`,
or else the layer itself. Its output then goes through an activation
quantizer, unless a ReLU follows that TFLite will fuse. Every keyword Keras
passes to a layer (``mask`` included) is passed on to the wrapped layer.

Every layer here has the class attribute ``kc_fake_quant = True``, by which
:func:`keras_compress.convert.to_tflite` knows the model carries its own
ranges.
"""

from __future__ import annotations

import warnings

import keras

from keras_compress.errors import QuantizationError
from keras_compress.quantization import clusters
from keras_compress.quantization import quantizers as Q
from keras_compress.quantization import registry
from keras_compress.quantization.composite import (
    AffineScheme,
    AttentionScheme,
    LayerNormScheme,
)
from keras_compress.quantization.config import (
    ConfigScheme,
    Default8BitQuantizeConfig,
    OutputOnlyConfig,
    QuantizeConfig,
)
from keras_compress.quantization.kernels import (
    ActivationQuant,
    EmbeddingScheme,
    KernelScheme,
)
from keras_compress.quantization.recurrent import RecurrentScheme

__all__ = ["QuantizeAnnotate", "QuantizeLayer", "QuantizeWrapper"]

_PACKAGE = "keras_compress.quantization"
_L = keras.layers


def _deserialize(config, custom_objects=None):
    if config is None or not isinstance(config, dict):
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
        self.supports_masking = True
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

    Args:
        layer: the layer to quantize.
        quantize_config: a :class:`~keras_compress.quantization.QuantizeConfig`
            saying how (None: the default scheme of the layer's class).
    """

    def __init__(self, layer, quantize_config=None, **kwargs):
        kwargs.setdefault("name", f"quant_annotate_{layer.name}")
        # Keras builds a Sequential's input from its first layer's `input_shape` argument,
        # kept in a private attribute with no public accessor: carry it over.
        shape = getattr(layer, "_input_shape_arg", None)
        if shape is not None and "input_shape" not in kwargs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                super().__init__(layer, input_shape=shape, **kwargs)
        else:
            super().__init__(layer, **kwargs)
        if quantize_config is not None and not isinstance(quantize_config, QuantizeConfig):
            raise QuantizationError(
                f"quantize_config: expected a QuantizeConfig, found {type(quantize_config).__name__}"
            )
        self.quantize_config = quantize_config
        self.supports_masking = getattr(layer, "supports_masking", False)

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, *args, **kwargs):
        return self.layer(inputs, *args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return _layer_mask(self.layer, inputs, mask)

    def get_config(self):
        config = super().get_config()
        config["quantize_config"] = _serialize(self.quantize_config)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = _deserialize(config["layer"], custom_objects)
        config["quantize_config"] = _deserialize(config.get("quantize_config"), custom_objects)
        return cls(**config)


_SCHEMES = {
    registry.Kind.KERNEL: KernelScheme,
    registry.Kind.EMBEDDING: EmbeddingScheme,
    registry.Kind.AFFINE: AffineScheme,
    registry.Kind.LAYER_NORM: LayerNormScheme,
    registry.Kind.ATTENTION: AttentionScheme,
    registry.Kind.CUSTOM: ConfigScheme,
    registry.Kind.RECURRENT: RecurrentScheme,
}


class _CallScheme:
    """Any other layer: called as it is (a decomposed activation gets its range in between)."""

    def __init__(self, wrapper):
        self.layer = wrapper.layer
        self.act = None
        if type(self.layer) is keras.layers.Activation:
            act = ActivationQuant(self.layer.activation, pre=False)
            self.act = act if act.kind == "decomposed" else None
        self.wrapper = wrapper

    def build(self, input_shape):
        if self.act is not None:
            self.act.build(self.wrapper)

    def call(self, inputs, training, *args, **kwargs):
        if self.act is not None:
            return self.act(inputs, training)
        if _takes(self.layer, "training"):
            kwargs["training"] = training
        return self.layer(inputs, *args, **kwargs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizeWrapper(keras.layers.Layer):
    """Runs ``layer`` with simulated int8 weights and output.

    Usually made by :func:`~keras_compress.quantization.quantize_model`.

    Args:
        layer: the layer to quantize (see :mod:`~keras_compress.quantization.registry`).
        batch_norm: a BatchNormalization that follows a Conv / Dense ``layer``, folded into it.
        quantize_output: put an activation range on the output (False when a
            ReLU follows that TFLite fuses into this op, or when the output
            keeps its input's scale). Default: True, except for Embedding.
        preserve_sparsity: keep the kernel's zeros at zero (a mask taken when
            the wrapper is built; pruning-preserving QAT).
        preserve_clusters: keep a clustered kernel's values as trainable
            centroids (cluster-preserving QAT, :mod:`~keras_compress.quantization.clusters`).
        weight_quantizer / output_quantizer: override the registry's choice.
        quantize_config: a :class:`~keras_compress.quantization.QuantizeConfig`
            (for a custom layer); its output quantizers replace ``output_quantizer``.
            Default: :class:`~keras_compress.quantization.config.Default8BitQuantizeConfig`,
            the built-in scheme of the layer's class; an ``OutputOnlyConfig``
            runs the layer in float and quantizes only its output.

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
        quantize_output=None,
        preserve_sparsity=False,
        preserve_clusters=False,
        weight_quantizer=None,
        output_quantizer=None,
        quantize_config=None,
        **kwargs,
    ):
        quantize_config = quantize_config if quantize_config is not None else Default8BitQuantizeConfig()
        if isinstance(quantize_config, Default8BitQuantizeConfig):
            kind = registry.kind_of(layer)
        elif isinstance(quantize_config, OutputOnlyConfig):  # the layer in float, a range on its output
            kind = registry.Kind.OUTPUT
        else:
            kind = registry.Kind.CUSTOM
        if kind is None or kind is registry.Kind.PASSTHROUGH:
            raise QuantizationError(
                f"layer '{layer.name}' ({type(layer).__name__}) cannot be quantized: {registry.unquantizable_reason(layer)}"
            )
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(**kwargs)
        self.layer, self.kind, self.quantize_config = layer, kind, quantize_config
        self.batch_norm = batch_norm
        if batch_norm is not None:
            _check_foldable(layer, batch_norm)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.preserve_clusters = preserve_clusters if isinstance(preserve_clusters, dict) else bool(preserve_clusters)
        self.weight_quantizer = Q.get(weight_quantizer) or registry.weight_quantizer(layer)
        outputs = quantize_config.get_output_quantizers(layer)
        self.output_quantizer = Q.get(output_quantizer) or (outputs[0] if outputs else registry.output_quantizer(layer))
        if quantize_output is None:
            quantize_output = kind is not registry.Kind.EMBEDDING and outputs != []
        self.quantize_output = bool(quantize_output)
        self.supports_masking = getattr(layer, "supports_masking", False)
        self.scheme = _SCHEMES.get(kind, _CallScheme)(self)
        self._out_vars = {}

    @property
    def layers(self):
        """The wrapped layers (so callbacks that look for nested wrappers find them)."""
        return [self.layer] + ([self.batch_norm] if self.batch_norm is not None else [])

    def kernels(self) -> dict:
        """The float kernels this wrapper fake-quantizes, as the layer uses them (pruning masks applied).

        Empty for layers without a kernel. Before BatchNormalization folding.
        """
        if not isinstance(self.scheme, KernelScheme):
            return {}
        return {name: self.scheme.raw(name) for name in self.scheme.kernel_names()}

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.batch_norm is not None and not self.batch_norm.built:
            self.batch_norm.build(self.layer.compute_output_shape(input_shape))
        self.scheme.build(input_shape)
        if self.quantize_output:
            self._out_vars = self.output_quantizer.build(None, "output", self)
        self.built = True

    def call(self, inputs, *args, training=None, **kwargs):
        training = bool(training)
        if self.kind in (registry.Kind.ATTENTION, registry.Kind.CUSTOM, registry.Kind.RECURRENT) or isinstance(
            self.scheme, _CallScheme
        ):
            y = self.scheme.call(inputs, training, *args, **kwargs)
        else:  # kernels, affine and normalization layers ignore masks (Keras passes mask=None to some)
            y = self.scheme.call(inputs, training)
        if self.quantize_output:
            y = self.output_quantizer(y, training, self._out_vars)
        return y

    def compute_output_spec(self, inputs, *args, training=None, **kwargs):
        # The wrapped layer's own output (fake quantization changes no shape or dtype):
        # cheaper than tracing this call.
        return self.layer.compute_output_spec(inputs, *args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return _layer_mask(self.layer, inputs, mask)

    # ---------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "batch_norm": _serialize(self.batch_norm),
                "quantize_output": self.quantize_output,
                "preserve_sparsity": self.preserve_sparsity,
                "preserve_clusters": clusters.layout(getattr(self.scheme, "clusters", {})) if self.built and self.preserve_clusters
                else self.preserve_clusters,
                "weight_quantizer": Q.serialize(self.weight_quantizer),
                "output_quantizer": Q.serialize(self.output_quantizer),
                "quantize_config": _serialize(self.quantize_config),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("layer", "batch_norm", "quantize_config"):
            config[key] = _deserialize(config.get(key), custom_objects)
        return cls(**config)


def _check_foldable(layer, batch_norm):
    if not isinstance(batch_norm, keras.layers.BatchNormalization):
        raise QuantizationError(
            f"batch_norm: expected a BatchNormalization, found '{batch_norm.name}' ({type(batch_norm).__name__})"
        )
    k = registry.kernel_layer(layer)
    if type(k) not in registry.FOLDABLE:
        raise QuantizationError(
            f"layer '{layer.name}' ({type(layer).__name__}): BatchNormalization folding needs one of "
            f"{', '.join(c.__name__ for c in registry.FOLDABLE)}"
        )
    name = registry.activation_name(getattr(k, "activation", None))
    if name not in (None, "linear"):
        raise QuantizationError(
            f"layer '{layer.name}' ({type(layer).__name__}) has activation {name!r} before its BatchNormalization: "
            "expected a linear layer to fold"
        )


def _serialize(obj):
    return None if obj is None else keras.saving.serialize_keras_object(obj)


def _layer_mask(layer, inputs, mask):
    if not getattr(layer, "supports_masking", False):
        return None
    try:
        return layer.compute_mask(inputs, mask)
    except TypeError:  # layers whose compute_mask takes other arguments (MultiHeadAttention)
        return mask


def _takes(layer, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False
