"""`QuantizeConfig`: how a custom layer opts in to QAT (tfmot's interface, on Keras 3).

Built-in layers are matched by their exact class
(:mod:`~keras_compress.quantization.registry`); any other layer, a subclass
of a built-in one included, is quantized only through a ``QuantizeConfig``
given to ``quantize_annotate_layer(layer, quantize_config=...)``. The
methods and their meaning are tfmot's: the weights to fake-quantize (they
are swapped into the layer for the duration of its ``call`` and restored
after), activations to wrap, and quantizers for the outputs.

Example:
    >>> import keras
    >>> from keras_compress.quantization import (QuantizeConfig, LastValueQuantizer,
    ...     MovingAverageQuantizer, quantize_annotate_layer, quantize_apply)
    >>> class Scaled(keras.layers.Layer):          # a custom layer: no built-in scheme
    ...     def build(self, input_shape):
    ...         self.kernel = self.add_weight(shape=(input_shape[-1], 2))
    ...     def call(self, x):
    ...         return keras.ops.matmul(x, self.kernel) * 2.0
    >>> class ScaledConfig(QuantizeConfig):
    ...     def get_weights_and_quantizers(self, layer):
    ...         return [(layer.kernel, LastValueQuantizer())]
    ...     def get_activations_and_quantizers(self, layer):
    ...         return []
    ...     def set_quantize_weights(self, layer, quantize_weights):
    ...         layer.kernel = quantize_weights[0]
    ...     def set_quantize_activations(self, layer, quantize_activations):
    ...         pass
    ...     def get_output_quantizers(self, layer):
    ...         return [MovingAverageQuantizer()]
    ...     def get_config(self):
    ...         return {}
    >>> inp = keras.Input((4,))
    >>> out = quantize_annotate_layer(Scaled(name="scaled"), quantize_config=ScaledConfig())(inp)
    >>> qat = quantize_apply(keras.Model(inp, out))
    >>> type(qat.layers[-1]).__name__, type(qat.layers[-1].layer).__name__
    ('QuantizeWrapper', 'Scaled')
"""

from __future__ import annotations

import abc
import contextlib

import keras
from keras import ops

from keras_compress.quantization import registry

__all__ = ["ConfigScheme", "QuantizeConfig"]


class QuantizeConfig(abc.ABC):
    """How to quantize one layer (tfmot's ``QuantizeConfig``).

    Implement every method; register the subclass with
    ``@keras.saving.register_keras_serializable()`` so a saved QAT model loads.
    """

    @abc.abstractmethod
    def get_weights_and_quantizers(self, layer):
        """[(weight variable, Quantizer)] to fake-quantize."""

    @abc.abstractmethod
    def get_activations_and_quantizers(self, layer):
        """[(activation callable, Quantizer)]: each activation's output gets the quantizer."""

    @abc.abstractmethod
    def set_quantize_weights(self, layer, quantize_weights):
        """Put the quantized weight tensors in place of the variables (e.g. ``layer.kernel = w[0]``)."""

    @abc.abstractmethod
    def set_quantize_activations(self, layer, quantize_activations):
        """Put the quantizing activations in place (e.g. ``layer.activation = a[0]``)."""

    @abc.abstractmethod
    def get_output_quantizers(self, layer):
        """[Quantizer] for the layer's output (empty: no range on it)."""

    @abc.abstractmethod
    def get_config(self):
        """The constructor arguments, for saving."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_compress.quantization")
class Default8BitQuantizeConfig(QuantizeConfig):
    """The built-in int8 scheme of a layer's class (what ``QuantizeWrapper.quantize_config`` holds for it).

    Describes the registry's choice in tfmot's terms (the kernel(s) and their
    quantizer, the output quantizer); the wrapper computes the layer through
    its own scheme (BatchNorm folding, ranges inside composite layers), not
    through ``set_quantize_weights``.
    """

    def get_weights_and_quantizers(self, layer):
        k = registry.kernel_layer(layer)
        if k is None:
            return []
        names = ("depthwise_kernel", "pointwise_kernel") if hasattr(k, "pointwise_kernel") else ("kernel",)
        return [(getattr(k, n), registry.weight_quantizer(layer)) for n in names]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        raise NotImplementedError("built-in layers are computed by their QuantizeWrapper scheme")

    def set_quantize_activations(self, layer, quantize_activations):
        raise NotImplementedError("built-in layers are computed by their QuantizeWrapper scheme")

    def get_output_quantizers(self, layer):
        return [registry.output_quantizer(layer)]

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_compress.quantization")
class OutputOnlyConfig(QuantizeConfig):
    """Only the output of a layer quantized; the layer computes in float (tfmot's).

    ``quantize_apply`` gives it to a float layer that feeds an annotated one,
    so the annotated layer reads an int8 tensor.
    """

    def __init__(self, quantize_config):
        self.quantize_config = quantize_config

    def get_weights_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def get_activations_and_quantizers(self, layer):
        return self.quantize_config.get_activations_and_quantizers(layer)

    def set_quantize_activations(self, layer, quantize_activations):
        return self.quantize_config.set_quantize_activations(layer, quantize_activations)

    def get_output_quantizers(self, layer):
        return self.quantize_config.get_output_quantizers(layer)

    def get_config(self):
        return {"quantize_config": self.quantize_config}

    @classmethod
    def from_config(cls, config):
        inner = config["quantize_config"]
        if isinstance(inner, dict):
            inner = keras.saving.deserialize_keras_object(inner)
        return cls(inner)


class _QuantizingActivation:
    """An activation followed by its quantizer (what ``set_quantize_activations`` receives)."""

    def __init__(self, activation, quantizer, variables):
        self.activation, self.quantizer, self.variables = activation, quantizer, variables
        self.training = False
        self.__name__ = getattr(activation, "__name__", "activation")

    def __call__(self, x):
        return self.quantizer(self.activation(x), self.training, self.variables)


class ConfigScheme:
    """QAT of a layer through its :class:`QuantizeConfig` (the weights swapped in during ``call``)."""

    def __init__(self, wrapper):
        self.w = wrapper
        self.config = wrapper.quantize_config

    def build(self, input_shape):
        layer = self.layer = self.w.layer
        self.weights = []
        for i, (weight, quantizer) in enumerate(self.config.get_weights_and_quantizers(layer)):
            variables = quantizer.build(tuple(weight.shape), f"weight{i}", self.w)
            self.weights.append((weight, quantizer, variables))
        self.activations = []
        for i, (fn, quantizer) in enumerate(self.config.get_activations_and_quantizers(layer)):
            self.activations.append(_QuantizingActivation(fn, quantizer, quantizer.build(None, f"activation{i}", self.w)))
        self.originals = [fn for fn, _ in self.config.get_activations_and_quantizers(layer)]

    @contextlib.contextmanager
    def swapped(self, training):
        quantized = [q(ops.convert_to_tensor(w), training, v) for w, q, v in self.weights]
        for act in self.activations:
            act.training = training
        self.config.set_quantize_weights(self.layer, quantized)
        if self.activations:
            self.config.set_quantize_activations(self.layer, self.activations)
        try:
            yield
        finally:
            self.config.set_quantize_weights(self.layer, [w for w, _, _ in self.weights])
            if self.activations:
                self.config.set_quantize_activations(self.layer, self.originals)

    def call(self, inputs, training, *args, **kwargs):
        with self.swapped(training):
            if "training" in _call_parameters(self.layer):
                kwargs["training"] = training
            return self.layer.call(inputs, *args, **kwargs)


def _call_parameters(layer):
    import inspect

    try:
        return inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return {}
