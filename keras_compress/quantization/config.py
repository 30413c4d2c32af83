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

from keras import ops

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
