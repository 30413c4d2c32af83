"""tfmot's API-level behaviours: annotation, apply, Lambda layers, exact classes, QuantizeConfig."""

import warnings

import keras
import numpy as np
import pytest

from keras_compress.errors import QuantizationError
from keras_compress.quantization import (
    LastValueQuantizer,
    MovingAverageQuantizer,
    QuantizeAnnotate,
    QuantizeConfig,
    QuantizeWrapper,
    quantize_annotate_layer,
    quantize_annotate_model,
    quantize_apply,
    quantize_model,
)

L = keras.layers


def test_annotated_first_layer_keeps_its_input_shape():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras warns about input_shape on layers
        model = keras.Sequential([quantize_annotate_layer(L.Dense(10, input_shape=(5,))), L.Dense(2)])
    assert model.built and tuple(model.inputs[0].shape) == (None, 5)
    qat = quantize_apply(model)
    assert isinstance(qat.layers[2], QuantizeWrapper) and type(qat.layers[-1]) is L.Dense


def test_apply_without_annotated_layers_raises():
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    with pytest.raises(QuantizationError, match="no layer annotated .* nothing to quantize"):
        quantize_apply(model)


def test_lambda_layers_are_skipped_with_a_warning():
    inp = keras.Input((4,))
    x = L.Dense(3, name="d")(inp)
    out = L.Lambda(lambda t: t * 2.0, name="double")(x)
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="'double' \\(Lambda\\) is not annotated"):
        annotated = quantize_annotate_model(model)
    assert type(annotated.get_layer("double")) is L.Lambda
    assert isinstance(annotated.get_layer("quant_annotate_d"), QuantizeAnnotate)
    with pytest.warns(UserWarning, match="'double' \\(Lambda\\) is left in float"):
        qat = quantize_model(model)
    assert type(qat.get_layer("double")) is L.Lambda


@keras.saving.register_keras_serializable(package="test_quantization_api")
class Doubled(L.Layer):
    """A custom layer (tfmot's guide's case): a kernel attribute and an activation attribute."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = units, keras.activations.get(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")

    def call(self, x):
        return self.activation(keras.ops.matmul(x, self.kernel)) * 2.0

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="test_quantization_api")
class DoubledConfig(QuantizeConfig):
    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, LastValueQuantizer())]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, MovingAverageQuantizer())]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


def test_custom_layer_opts_in_through_a_quantize_config(tmp_path):
    inp = keras.Input((4,))
    out = quantize_annotate_layer(Doubled(3, activation="relu", name="dbl"), quantize_config=DoubledConfig())(inp)
    model = keras.Model(inp, out)
    qat = quantize_apply(model)
    wrapper = qat.get_layer("quant_dbl")
    assert wrapper.kind == "custom" and not wrapper.quantize_output
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    qat.compile("adam", "mse")
    qat.fit(x, np.zeros((16, 3)), epochs=1, verbose=0)
    ref = model.predict(x, verbose=0)
    got = qat.predict(x, verbose=0)
    assert np.abs(ref - got).max() < 0.1 * np.abs(ref).max() + 0.05  # int8 weights, same function
    assert isinstance(wrapper.layer.kernel, keras.Variable)  # the variable is back after each call
    path = tmp_path / "custom.keras"
    qat.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), got, atol=1e-6)


def test_float_layer_read_by_an_annotated_layer_gets_only_an_output_range():
    """tfmot's rule: the unannotated layer an annotated one reads is wrapped with an output-only config."""
    from keras_compress.quantization import Default8BitQuantizeConfig, OutputOnlyConfig, QuantizeLayer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = keras.Sequential(
            [L.Conv2D(4, 3, input_shape=(6, 6, 1), name="conv"), L.Flatten(name="flat"), quantize_annotate_layer(L.Dense(2, name="d"))]
        )
    qat = quantize_apply(model)
    assert not any(isinstance(l, QuantizeLayer) for l in qat.layers)
    flat = qat.get_layer("flat")  # same-scale: the conv's range reaches the Dense through it
    conv = qat.get_layer("quant_conv")
    assert isinstance(conv.quantize_config, OutputOnlyConfig) and conv.quantize_config.get_weights_and_quantizers(conv.layer) == []
    assert isinstance(conv.quantize_config.get_config()["quantize_config"], Default8BitQuantizeConfig)
    assert isinstance(qat.get_layer("quant_d").quantize_config, Default8BitQuantizeConfig)
    assert type(flat) is L.Flatten
    x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)
    qat.compile("adam", "mse")
    qat.fit(x, np.zeros((8, 2)), epochs=1, verbose=0)
    np.testing.assert_allclose(qat.get_layer("quant_conv").layer.kernel.numpy() == 0, False)  # float conv, trained
