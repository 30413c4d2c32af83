"""Port of tfmot's quantization/keras/quantize_test.py (the API level) to keras_compress.

Same test names and assertions against ``keras_compress.quantization``.
Changes forced by Keras 3 or by public names:
- ``model.layers`` of a Functional model lists its InputLayers, tf_keras'
  Sequential did not: layers are compared without them (``_layers``).
- ``layer._outbound_nodes[0].outbound_layer`` and ``model._input_layers`` are
  private; the consumers of a layer's output are found from each layer's
  public ``input`` (``_consumers``).
- ``K.batch_get_value`` is ``keras.ops.convert_to_numpy``; ``w.name`` (no
  ``:0`` suffix, no scope in Keras 3) is ``w.path``.
- tfmot's ``QuantizeConfig`` and ``Default8BitQuantizeConfig`` are looked up
  in ``keras_compress.quantization`` (a test that needs one fails if it is missing).
"""

import keras
import numpy as np
from tfmot_compat import TestCase, build_simple_dense_model

from keras_compress import quantization as quantize

quantize_annotate_layer = quantize.quantize_annotate_layer
quantize_annotate_model = quantize.quantize_annotate_model
quantize_apply = quantize.quantize_apply
QuantizeAnnotate = quantize.QuantizeAnnotate
QuantizeWrapper = quantize.QuantizeWrapper
QuantizeLayer = quantize.QuantizeLayer
QuantizeConfig = getattr(quantize, "QuantizeConfig", object)
Default8BitQuantizeConfig = getattr(quantize, "Default8BitQuantizeConfig", None)
LastValueQuantizer = quantize.LastValueQuantizer
custom_object_scope = keras.saving.custom_object_scope


def _layers(model):
    return [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]


def _consumers(model, layer):
    """The layers of `model` that take `layer`'s output as an input."""
    out = layer.output
    return [
        l for l in model.layers
        if l is not layer and not isinstance(l, keras.layers.InputLayer)
        and any(t is out for t in keras.tree.flatten(l.input))
    ]


class _TestQuantizeConfig(QuantizeConfig):
    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        pass

    def get_config(self):
        return {}


class QuantizeTest(TestCase):
    def testQuantizeModel_Passes(self):
        model = keras.Sequential([keras.layers.Dense(10, input_shape=(5,)), keras.layers.Dropout(0.4)])

        quantize.quantize_model(model)

    def testQuantizeLayer_Fails(self):
        layer = keras.layers.Dense(10, input_shape=(5,))

        with self.assertRaises(ValueError):
            quantize.quantize_model(layer)


class QuantizeAnnotateTest(TestCase):
    def _assertWrappedLayer(self, layer, quantize_config=None):
        self.assertIsInstance(layer, QuantizeAnnotate)
        self.assertEqual(quantize_config, layer.quantize_config)

    def _assertWrappedModel(self, model):
        for layer in _layers(model):
            self._assertWrappedLayer(layer)

    def testQuantizeAnnotateLayer(self):
        layer = keras.layers.Dense(10, input_shape=(5,))
        wrapped_layer = quantize_annotate_layer(layer)

        self._assertWrappedLayer(wrapped_layer)

        inputs = np.random.rand(1, 5)
        model = keras.Sequential([layer])
        wrapped_model = keras.Sequential([wrapped_layer])

        # Both models should have the same results, since quantize_annotate does
        # not modify behavior.
        self.assertAllEqual(model.predict(inputs), wrapped_model.predict(inputs))

    def testQuantizeAnnotateSequentialFirstLayer_IsBuilt(self):
        model = keras.Sequential(
            [quantize_annotate_layer(keras.layers.Dense(10, input_shape=(5,))), keras.layers.Dropout(0.4)]
        )

        self.assertTrue(model.built)

    def testQuantizeAnnotateLayer_FailsWithModel(self):
        model = build_simple_dense_model()

        with self.assertRaises(ValueError):
            quantize.quantize_annotate_layer(model)

    def testQuantizeAnnotateModel(self):
        model = keras.Sequential([keras.layers.Dense(10, input_shape=(5,)), keras.layers.Dropout(0.4)])
        annotated_model = quantize_annotate_model(model)

        self._assertWrappedModel(annotated_model)

        inputs = np.random.rand(1, 5)
        self.assertAllEqual(model.predict(inputs), annotated_model.predict(inputs))

    def testQuantizeAnnotateModel_HasAnnotatedLayers(self):
        quantize_config = _TestQuantizeConfig()

        model = keras.Sequential(
            [
                keras.layers.Dense(10, input_shape=(5,)),
                quantize_annotate_layer(keras.layers.Dense(5), quantize_config=quantize_config),
            ]
        )
        annotated_model = quantize_annotate_model(model)

        self._assertWrappedLayer(_layers(annotated_model)[0])
        self._assertWrappedLayer(_layers(annotated_model)[1], quantize_config)
        # Ensure an already annotated layer is not wrapped again.
        self.assertIsInstance(_layers(annotated_model)[1].layer, keras.layers.Dense)

        inputs = np.random.rand(1, 5)
        self.assertAllEqual(model.predict(inputs), annotated_model.predict(inputs))

    def testQuantizeAnnotateModel_FailsWithLayer(self):
        layer = keras.layers.Dense(10)

        with self.assertRaises(ValueError):
            quantize.quantize_annotate_model(layer)

    class CustomLayer(keras.layers.Dense):
        pass

    def testQuantizeAnnotateModel_PassesWithCustomLayer(self):
        model = keras.Sequential([self.CustomLayer(3, input_shape=(2,))])
        quantize_annotate_model(model)

    # tfmot: "this behavior may change in the future".
    def testQuantizeAnnotateModel_RemovesOptimizer(self):
        model = build_simple_dense_model()
        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])

        self.assertIsNotNone(model.optimizer)

        annotated_model = quantize_annotate_model(model)
        self.assertIsNone(getattr(annotated_model, "optimizer", None))

    def testQuantizeAnnotateModel_FailsWithSubclassedModel(self):
        class MyModel(keras.Model):
            def call(self, inputs, training=None, mask=None):
                return inputs

        with self.assertRaises(ValueError):
            quantize_annotate_model(MyModel())

    def testQuantizeAnnotateModel_FailsWithNestedModels(self):
        with self.assertRaises(ValueError):
            quantize_annotate_model(
                keras.Sequential([keras.Sequential([keras.layers.Dense(10, input_shape=(2,))])])
            )

    def testQuantizeAnnotateModel_SkipsLambda(self):
        model = keras.Sequential(
            [
                keras.layers.Dense(10, input_shape=(5,)),
                keras.layers.Dropout(0.4),
                keras.layers.Lambda(lambda x: x + 1.0),
            ]
        )
        with self.assertWarns(Warning):
            annotated_model = quantize_annotate_model(model)

        self._assertWrappedLayer(_layers(annotated_model)[0])
        self._assertWrappedLayer(_layers(annotated_model)[1])
        self.assertIsInstance(_layers(annotated_model)[2], keras.layers.Lambda)
        inputs = np.random.rand(1, 5)
        self.assertAllEqual(model.predict(inputs), annotated_model.predict(inputs))


class QuantizeApplyTest(TestCase):
    # Validation tests

    def testRaisesErrorIfNotKerasModel(self):
        with self.assertRaises(ValueError):
            quantize_apply(keras.layers.Dense(32))

    def testRaisesErrorIfKerasSubclassedModel(self):
        class MyModel(keras.Model):
            def call(self, inputs, training=None, mask=None):
                return inputs

        with self.assertRaises(ValueError):
            quantize_apply(MyModel())

    def testRaisesErrorNoAnnotatedLayers_Sequential(self):
        model = keras.Sequential([keras.layers.Dense(10), keras.layers.Dropout(0.4)])

        with self.assertRaises(ValueError):
            quantize_apply(model)

    def testRaisesErrorNoAnnotatedLayers_Functional(self):
        inputs = keras.Input(shape=(10,))
        x = keras.layers.Dense(32, activation="relu")(inputs)
        results = keras.layers.Dense(5, activation="softmax")(x)
        model = keras.Model(inputs=inputs, outputs=results)

        with self.assertRaises(ValueError):
            quantize_apply(model)

    def testRaisesErrorModelNotBuilt(self):
        model = keras.Sequential([quantize_annotate_layer(keras.layers.Dense(10))])

        self.assertFalse(model.built)
        with self.assertRaises(ValueError):
            quantize_apply(model)

    def testRaisesErrorNotInstanceOfQuantizeConfig(self):
        with self.assertRaises(ValueError):
            keras.Sequential([quantize_annotate_layer(keras.layers.Dense(10), quantize_config=object())])

    # Helper functions to verify quantize wrapper applied correctly.

    def _assert_weights_equal_value(self, annotated_weights, emulated_weights):
        annotated_weight_values = [keras.ops.convert_to_numpy(w) for w in annotated_weights]
        emulated_weight_values = [keras.ops.convert_to_numpy(w) for w in emulated_weights]

        self.assertEqual(len(annotated_weight_values), len(emulated_weight_values))
        for aw, ew in zip(annotated_weight_values, emulated_weight_values):
            self.assertAllClose(aw, ew)

    def _assert_weights_different_objects(self, annotated_weights, emulated_weights):
        self.assertEqual(len(annotated_weights), len(emulated_weights))
        for aw, ew in zip(annotated_weights, emulated_weights):
            self.assertNotEqual(id(aw), id(ew))

    def _assert_layer_quantized(self, annotate_wrapper, quantize_wrapper, exclude_keys=None):
        self.assertIsInstance(quantize_wrapper, QuantizeWrapper)

        # Extract configs of the inner layers they wrap.
        annotated_config = annotate_wrapper.layer.get_config()
        quantized_config = quantize_wrapper.layer.get_config()

        # The underlying layers aren't always exactly the same. For example,
        # activations in the underlying layers might be replaced. Exclude keys
        # if required.
        if exclude_keys:
            for key in exclude_keys:
                annotated_config.pop(key)
                quantized_config.pop(key)

        self.assertEqual(annotated_config, quantized_config)

        def _sort_weights(weights):
            # Sort by the weight's own name (tfmot stripped the layer name).
            return sorted(weights, key=lambda w: w.path.split("/")[-1])

        annotated_weights = _sort_weights(annotate_wrapper.trainable_weights)
        quantized_weights = _sort_weights(quantize_wrapper.trainable_weights)

        # Quantized model should pick the same weight values from the original
        # model. However, they should not be the same weight objects. We don't
        # want training the quantized model to change weights in the original model.
        self._assert_weights_different_objects(annotated_weights, quantized_weights)
        self._assert_weights_equal_value(annotated_weights, quantized_weights)

    def _assert_model_quantized(self, annotated_model, quantized_model, exclude_keys=None):
        for layer_annotated, layer_quantized in zip(_layers(annotated_model), _layers(quantized_model)):
            if not isinstance(layer_annotated, QuantizeAnnotate):
                # Possibly wrapped for input quantization.
                if isinstance(layer_quantized, QuantizeWrapper):
                    consumers = _consumers(annotated_model, layer_annotated)
                    self.assertLen(consumers, 1)
                    self.assertIsInstance(consumers[0], QuantizeAnnotate)

                    # Ensure that only outputs are quantized.
                    self.assertFalse(
                        layer_quantized.quantize_config.get_weights_and_quantizers(layer_quantized.layer)
                    )
                continue

            self._assert_layer_quantized(layer_annotated, layer_quantized, exclude_keys)

    def _assert_nonannotated_input_layer_quantized(self, quantized_model, layer_index):
        output_quantized_layer = _layers(quantized_model)[layer_index]
        self.assertIsInstance(output_quantized_layer, QuantizeWrapper)
        output_quantized_config = output_quantized_layer.quantize_config
        default_quantized_config = output_quantized_config.get_config()["quantize_config"]
        self.assertIsInstance(default_quantized_config, Default8BitQuantizeConfig)
        self.assertFalse(output_quantized_config.get_weights_and_quantizers(output_quantized_layer.layer))
        self.assertTrue(default_quantized_config.get_weights_and_quantizers(output_quantized_layer.layer))
        output_quantizers = output_quantized_config.get_output_quantizers(output_quantized_layer.layer)
        default_output_quantizers = default_quantized_config.get_output_quantizers(
            output_quantized_layer.layer
        )
        for output_quantizer, default_quantizer in zip(output_quantizers, default_output_quantizers):
            self.assertEqual(output_quantizer, default_quantizer)

    # quantize_apply Tests

    class CustomLayer(keras.layers.Dense):
        pass

    def testQuantizeCustomLayerWithoutQuantizeScope_RaisesError(self):
        annotated_model = keras.Sequential([quantize_annotate_layer(self.CustomLayer(3, input_shape=(2,)))])

        with self.assertRaises(ValueError) as err:
            quantize_apply(annotated_model)

        expected_error = (
            "Unable to clone model. This generally happens if you used custom "
            "Keras layers or objects in your model. Please specify them via "
            "`quantize_scope` for your calls to `quantize_model` and "
            "`quantize_apply`."
        )

        self.assertEqual(str(err.exception), expected_error)

    def testQuantize_RaisesErrorIfNoQuantizeConfig(self):
        annotated_model = keras.Sequential([QuantizeAnnotate(self.CustomLayer(3), input_shape=(2,))])

        with custom_object_scope({"CustomLayer": self.CustomLayer}), self.assertRaises(RuntimeError):
            quantize_apply(annotated_model)

    def testQuantize_UsesBuiltinQuantizeConfig(self):
        annotated_model = keras.Sequential([quantize_annotate_layer(keras.layers.Dense(3, input_shape=(2,)))])

        quantized_model = quantize_apply(annotated_model)
        quantized_layer = _layers(quantized_model)[1]

        # 'activation' gets replaced while quantizing the model. Hence excluded
        # from equality checks.
        self._assert_layer_quantized(_layers(annotated_model)[0], quantized_layer, ["activation"])
        self.assertIsInstance(quantized_layer.quantize_config, Default8BitQuantizeConfig)

    def testQuantize_UsesQuantizeConfigFromUser_NoBuiltIn(self):
        annotated_model = keras.Sequential(
            [quantize_annotate_layer(self.CustomLayer(3, input_shape=(2,)), quantize_config=_TestQuantizeConfig())]
        )

        with custom_object_scope(
            {"CustomLayer": self.CustomLayer, "_TestQuantizeConfig": _TestQuantizeConfig}
        ):
            quantized_model = quantize_apply(annotated_model)
        quantized_layer = _layers(quantized_model)[1]

        self._assert_layer_quantized(_layers(annotated_model)[0], quantized_layer)
        self.assertIsInstance(quantized_layer.quantize_config, _TestQuantizeConfig)

    def testQuantize_PreferenceToUserSpecifiedQuantizeConfig(self):
        annotated_model = keras.Sequential(
            [
                quantize_annotate_layer(
                    keras.layers.Dense(3, input_shape=(2,)), quantize_config=_TestQuantizeConfig()
                )
            ]
        )

        with custom_object_scope({"_TestQuantizeConfig": _TestQuantizeConfig}):
            quantized_model = quantize_apply(annotated_model)
        quantized_layer = _layers(quantized_model)[1]

        self._assert_layer_quantized(_layers(annotated_model)[0], quantized_layer)
        self.assertIsInstance(quantized_layer.quantize_config, _TestQuantizeConfig)

    def testAppliesQuantizationToAnnotatedModel_Sequential(self):
        model = keras.Sequential(
            [
                keras.layers.Conv2D(32, 5, input_shape=(28, 28, 1), activation="relu"),
                quantize_annotate_layer(keras.layers.Dense(10, activation="relu")),
                quantize_annotate_layer(keras.layers.Dense(5, activation="softmax")),
            ]
        )

        quantized_model = quantize_apply(model)

        self._assert_model_quantized(model, quantized_model, ["activation"])

    def testAppliesQuantizationToInputsToAnnotatedModel_Sequential(self):
        model = keras.Sequential(
            [
                keras.layers.Conv2D(32, 5, input_shape=(28, 28, 1), activation="relu"),
                keras.layers.Dense(10, activation="relu"),
                quantize_annotate_layer(keras.layers.Dense(5, activation="softmax")),
            ]
        )
        quantized_model = quantize_apply(model)
        self._assert_model_quantized(model, quantized_model, ["activation"])
        # Test that Dense layer has output only quantization config.
        self._assert_nonannotated_input_layer_quantized(quantized_model, layer_index=1)

    def testAppliesQuantizationToAnnotatedModel_PreservesBuiltState(self):
        model = build_simple_dense_model()
        annotated_model = quantize_annotate_model(model)

        self.assertTrue(annotated_model.built)

        quantized_model = quantize_apply(annotated_model)

        self.assertTrue(quantized_model.built)

    def _get_simple_functional_model(self):
        inputs = keras.Input(shape=(28, 28, 1))
        x = keras.layers.Conv2D(32, 5, activation="relu")(inputs)
        x = quantize_annotate_layer(keras.layers.Dense(10, activation="relu"))(x)
        results = quantize_annotate_layer(keras.layers.Dense(5, activation="softmax"))(x)
        return keras.Model(inputs=inputs, outputs=results)

    def testAppliesQuantizationToAnnotatedModel_Functional(self):
        model = self._get_simple_functional_model()
        quantized_model = quantize_apply(model)

        self._assert_model_quantized(model, quantized_model, ["activation"])

    def testAppliesQuantizationToInputsToAnnotatedModel_Functional(self):
        inputs = keras.Input(shape=(28, 28, 1))
        x = keras.layers.Conv2D(32, 5, activation="relu")(inputs)
        x = keras.layers.Dense(10, activation="relu")(x)
        results = quantize_annotate_layer(keras.layers.Dense(5, activation="softmax"))(x)
        model = keras.Model(inputs=inputs, outputs=results)
        quantized_model = quantize_apply(model)
        self._assert_model_quantized(model, quantized_model, ["activation"])
        # Test that Dense layer has output only quantization config.
        self._assert_nonannotated_input_layer_quantized(quantized_model, layer_index=1)

    def testDoesNotQuantizeInputLayer_OutboundLayerNotQuantized(self):
        model = self._get_simple_functional_model()

        quantized_model = quantize_apply(model)

        # Since first layer is not quantized, QuantizeLayer does not get inserted
        # after InputLayer.
        input_layer = quantized_model.layers[0]
        next_layer = _consumers(quantized_model, input_layer)[0]
        self.assertNotIsInstance(next_layer, QuantizeLayer)

    def testQuantizesInputLayer_OutboundLayerIsQuantized(self):
        inputs = keras.Input(shape=(28, 28, 1))
        x = quantize_annotate_layer(keras.layers.Conv2D(32, 5, activation="relu"))(inputs)
        x = quantize_annotate_layer(keras.layers.Dense(10, activation="relu"))(x)
        model = keras.Model(inputs=inputs, outputs=x)

        quantized_model = quantize_apply(model)

        # First layer is quantized. Hence QuantizeLayer gets inserted after
        # InputLayer.
        input_layer = quantized_model.layers[0]
        next_layer = _consumers(quantized_model, input_layer)[0]
        self.assertIsInstance(next_layer, QuantizeLayer)

    # tfmot: "this behavior may change in the future".
    def testQuantizeApply_RemovesOptimizer(self):
        model = build_simple_dense_model()
        annotated_model = quantize_annotate_model(model)
        annotated_model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])

        self.assertIsNotNone(annotated_model.optimizer)

        quantized_model = quantize_apply(annotated_model)
        self.assertIsNone(getattr(quantized_model, "optimizer", None))

    def testQuantizeApply_RunsWhenNestedModelNotAnnotated(self):
        annotated_model = keras.Sequential(
            [
                keras.Sequential([keras.layers.Dense(10, input_shape=(2,))]),
                quantize_annotate_layer(keras.layers.Dense(10)),
            ]
        )

        quantize_apply(annotated_model)

    class CustomConvLayer(keras.layers.Layer):
        def __init__(self, name=None, **kwargs):
            super().__init__(name=name, **kwargs)
            self.conv1 = keras.layers.Conv2D(2, 2)

        def build(self, input_shape):
            self.conv1.build(input_shape)

        def call(self, inputs):
            return self.conv1(inputs)

        def get_config(self):
            return {"name": self.name}

    class CustomConvQuantizeConfig(QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return [
                (
                    layer.conv1.kernel,
                    LastValueQuantizer(num_bits=8, symmetric=True, narrow_range=False, per_axis=False),
                ),
            ]

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            layer.conv1.kernel = quantize_weights[0]

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    def testQuantizeApply_KeepTrainableWeightOrder(self):
        layer = self.CustomConvLayer(input_shape=(28, 28, 3))
        model = keras.Sequential([layer])

        def apply_quantization_to_dense(layer):
            if isinstance(layer, self.CustomConvLayer):
                return quantize_annotate_layer(layer, quantize_config=self.CustomConvQuantizeConfig())
            return layer

        annotated_model = keras.models.clone_model(model, clone_function=apply_quantization_to_dense)

        with quantize.quantize_scope(
            {"CustomConvQuantizeConfig": self.CustomConvQuantizeConfig, "CustomConvLayer": self.CustomConvLayer}
        ):
            quant_aware_model = quantize_apply(annotated_model)

        self._assert_weights_different_objects(model.trainable_weights, quant_aware_model.trainable_weights)
        self._assert_weights_equal_value(model.trainable_weights, quant_aware_model.trainable_weights)
