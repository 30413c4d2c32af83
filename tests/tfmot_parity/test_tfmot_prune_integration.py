"""Port of tfmot's sparsity/keras/prune_integration_test.py to keras_compress on Keras 3.

Same test names and assertions. Changes forced by Keras 3 or by tfmot 0.8.1:
- ``.tf`` weights are ``.weights.h5`` (Keras 3 has no TF-checkpoint weights
  format), ``.h5`` models are ``.keras``; ``tf.train.latest_checkpoint`` is
  the newest ``.weights.h5`` file.
- ``model.input.get_shape().as_list()`` is ``list(model.inputs[0].shape)``;
  ``model.optimizer is None`` is ``getattr(model, "optimizer", None) is None``
  (an uncompiled Keras 3 model has no ``optimizer`` attribute).
- ``PeepholeLSTMCell`` does not exist in Keras 3.
- ``sparsity_2x4=True`` is ``sparsity_m_by_n=(2, 4)`` (tfmot 0.8.1's name).
- ``x_train = np.random.rand(20, 10),`` (a one-element tuple, which tf_keras
  unpacked) is the array itself.
Tests marked xfail(strict=True) are deliberate differences (README "Differences
from tfmot"); not-ported tests are listed in this folder's README.
"""

import glob
import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from tfmot_compat import (
    ModelCompare,
    TestCase,
    assert_model_sparsity,
    assert_model_sparsity_m_by_n,
    build_mnist_model,
    build_simple_dense_model,
    get_value,
    is_model_sparsity_not,
    model_type_keys,
    save_restore_keras_model,
    temp_weights_file,
)

from keras_compress import pruning as prune
from keras_compress.pruning import callbacks as pruning_callbacks
from keras_compress.pruning import schedules as pruning_schedule
from keras_compress.pruning import wrapper as pruning_wrapper

layers = keras.layers


class PruneIntegrationTest(TestCase, parameterized.TestCase, ModelCompare):
    # The prunable layers of tfmot's registry that its test trains one by one
    # (Conv2D/3DTranspose excluded there too; LocallyConnected is not in Keras 3;
    # Embedding has its own test).
    _PRUNABLE_LAYERS = (
        layers.Conv1D,
        layers.Conv2D,
        layers.Conv3D,
        layers.SeparableConv1D,
        layers.SeparableConv2D,
        layers.Dense,
    )

    # Layers to which sparsity 2x4 can be applied. tfmot's list also has Conv2D, on a
    # kernel with one input channel: tfmot 0.8.1's sparsity_m_by_n leaves that kernel
    # dense too (measured: sparsity 0.0); the 0.5 asserted came from the removed
    # sparsity_2x4. Not ported (README).
    _PRUNABLE_LAYERS_SPARSITY_2x4 = (layers.Dense,)

    _RNN_LAYERS = (layers.GRU, layers.LSTM, layers.SimpleRNN)

    @staticmethod
    def _batch(dims, batch_size):
        """If dims is (None, 5, 2), returns (batch_size, 5, 2)."""
        dims = list(dims)
        if dims[0] is None:
            dims[0] = batch_size
        return dims

    @staticmethod
    def _get_params_for_layer(layer_type):
        """Returns ([constructor args], input_shape) for `layer_type`."""
        return {
            layers.Conv1D: ([4, 2], (3, 6)),
            layers.Conv2D: ([4, (2, 2)], (4, 6, 1)),
            layers.Conv3D: ([2, (3, 3, 3)], (5, 7, 6, 3)),
            layers.SeparableConv1D: ([4, 3], (3, 6)),
            layers.SeparableConv2D: ([4, (2, 2)], (4, 6, 1)),
            layers.Dense: ([4], (6,)),
        }[layer_type]

    def setUp(self):
        super().setUp()
        self.params = {
            "pruning_schedule": pruning_schedule.ConstantSparsity(0.5, 0, -1, 1),
            "block_size": (1, 1),
            "block_pooling_type": "AVG",
        }

    def _check_strip_pruning_matches_original(self, model, sparsity, input_data=None):
        assert_model_sparsity(self, sparsity, model)
        stripped_model = prune.strip_pruning(model)

        if input_data is None:
            input_data = np.random.randn(*self._batch(model.inputs[0].shape, 1))

        model_result = model.predict(input_data)
        stripped_model_result = stripped_model.predict(input_data)
        np.testing.assert_almost_equal(model_result, stripped_model_result)

    @staticmethod
    def _is_pruned(model):
        for layer in model.layers:
            if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
                return True

    @staticmethod
    def _train_model(model, epochs=1, x_train=None, y_train=None, callbacks=None):
        if x_train is None:
            x_train = np.random.rand(20, 10)
        if y_train is None:
            y_train = keras.utils.to_categorical(np.random.randint(5, size=(20, 1)), 5)

        if getattr(model, "optimizer", None) is None:
            model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])

        if callbacks is None:
            callbacks = []
            if PruneIntegrationTest._is_pruned(model):
                callbacks = [pruning_callbacks.UpdatePruningStep()]

        model.fit(x_train, y_train, epochs=epochs, batch_size=20, callbacks=callbacks)

    def _get_pretrained_model(self):
        model = build_simple_dense_model()
        self._train_model(model, epochs=1)
        return model

    ###################################################################
    # Sanity checks and special cases for training with pruning.

    def testPrunesZeroSparsity_IsNoOp(self):
        model = build_simple_dense_model()

        model2 = build_simple_dense_model()
        model2.set_weights(model.get_weights())

        params = self.params
        params["pruning_schedule"] = pruning_schedule.ConstantSparsity(
            target_sparsity=0, begin_step=0, frequency=1
        )
        pruned_model = prune.prune_low_magnitude(model2, **params)

        x_train = np.random.rand(20, 10)
        y_train = keras.utils.to_categorical(np.random.randint(5, size=(20, 1)), 5)

        self._train_model(model, epochs=1, x_train=x_train, y_train=y_train)
        self._train_model(pruned_model, epochs=1, x_train=x_train, y_train=y_train)

        self._assert_weights_different_objects(model, pruned_model)
        self._assert_weights_same_values(model, pruned_model)

    def testPruneWithHighSparsity(self):
        params = self.params
        params["pruning_schedule"] = pruning_schedule.ConstantSparsity(
            target_sparsity=0.99, begin_step=0, frequency=1
        )

        model = prune.prune_low_magnitude(build_simple_dense_model(), **params)
        self._train_model(model, epochs=1)
        for layer in model.layers:
            if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
                for weight in layer.get_prunable_weights():
                    self.assertEqual(1, np.count_nonzero(get_value(weight)))

    ###################################################################
    # Tests for training with pruning with pretrained models or weights.

    def testPrunePretrainedModel_RemovesOptimizer(self):
        model = self._get_pretrained_model()

        self.assertIsNotNone(model.optimizer)
        pruned_model = prune.prune_low_magnitude(model, **self.params)
        self.assertIsNone(getattr(pruned_model, "optimizer", None))

    @pytest.mark.xfail(
        strict=True,
        reason="deliberate: prune_low_magnitude(model) copies the weights so that training "
        "the pruned model leaves `model` as it was (tfmot shares the weight objects)",
    )
    def testPrunePretrainedModel_PreservesWeightObjects(self):
        model = self._get_pretrained_model()

        pruned_model = prune.prune_low_magnitude(model, **self.params)
        self._assert_weights_same_objects(model, pruned_model)

    def testPrunePretrainedModel_SameInferenceWithoutTraining(self):
        model = self._get_pretrained_model()
        pruned_model = prune.prune_low_magnitude(model, **self.params)

        input_data = np.random.rand(10, 10)

        out = model.predict(input_data)
        pruned_out = pruned_model.predict(input_data)

        self.assertTrue((out == pruned_out).all())

    def testLoadTFWeightsThenPrune_SameInferenceWithoutTraining(self):
        model = self._get_pretrained_model()

        tf_weights = temp_weights_file()
        model.save_weights(tf_weights)

        # load weights into model then prune.
        same_architecture_model = build_simple_dense_model()
        same_architecture_model.load_weights(tf_weights)
        pruned_model = prune.prune_low_magnitude(same_architecture_model, **self.params)

        input_data = np.random.rand(10, 10)

        out = model.predict(input_data)
        pruned_out = pruned_model.predict(input_data)

        self.assertTrue((out == pruned_out).all())

    def testPruneThenLoadsKerasWeights_Fails(self):
        model = self._get_pretrained_model()

        keras_weights = temp_weights_file()
        model.save_weights(keras_weights)

        # load weights into pruned model.
        same_architecture_model = build_simple_dense_model()
        pruned_model = prune.prune_low_magnitude(same_architecture_model, **self.params)

        # error since number of keras_weights is fewer than weights in pruned model
        # because pruning introduces weights.
        with self.assertRaises(ValueError):
            pruned_model.load_weights(keras_weights)

    ###################################################################
    # Tests for training with pruning from scratch.

    @parameterized.parameters(list(_PRUNABLE_LAYERS))
    def testPrunesSingleLayer_ReachesTargetSparsity(self, layer_type):
        model = keras.Sequential()
        args, input_shape = self._get_params_for_layer(layer_type)
        model.add(prune.prune_low_magnitude(layer_type(*args), input_shape=input_shape, **self.params))

        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        assert_model_sparsity(self, 0.0, model)
        model.fit(
            np.random.randn(*self._batch(model.inputs[0].shape, 32)),
            np.random.randn(*self._batch(model.outputs[0].shape, 32)),
            callbacks=[pruning_callbacks.UpdatePruningStep()],
        )

        assert_model_sparsity(self, 0.5, model)

        self._check_strip_pruning_matches_original(model, 0.5)

    @parameterized.parameters(list(_PRUNABLE_LAYERS_SPARSITY_2x4))
    def testSparsityPruning2x4_SupportedLayers(self, layer_type):
        """Check that we prune supported layers with sparsity 2x4."""
        self.params.update({"sparsity_m_by_n": (2, 4)})

        model = keras.Sequential()
        args, input_shape = (
            ([16, (5, 7)], (8, 8, 1)) if layer_type == layers.Conv2D else ([16], (8,))
        )
        model.add(prune.prune_low_magnitude(layer_type(*args), input_shape=input_shape, **self.params))

        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])

        assert_model_sparsity(self, 0.0, model)
        model.fit(
            np.random.randn(*self._batch(model.inputs[0].shape, 32)),
            np.random.randn(*self._batch(model.outputs[0].shape, 32)),
            callbacks=[pruning_callbacks.UpdatePruningStep()],
        )

        assert_model_sparsity(self, 0.5, model)
        assert_model_sparsity_m_by_n(self, model, (2, 4))

        self._check_strip_pruning_matches_original(model, 0.5)

    @parameterized.parameters(list(_RNN_LAYERS))
    def testRNNLayersSingleCell_ReachesTargetSparsity(self, layer_type):
        model = keras.Sequential()
        model.add(prune.prune_low_magnitude(layer_type(10), input_shape=(3, 4), **self.params))

        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        assert_model_sparsity(self, 0.0, model)
        model.fit(
            np.random.randn(*self._batch(model.inputs[0].shape, 32)),
            np.random.randn(*self._batch(model.outputs[0].shape, 32)),
            callbacks=[pruning_callbacks.UpdatePruningStep()],
        )

        assert_model_sparsity(self, 0.5, model)

        self._check_strip_pruning_matches_original(model, 0.5)

    def testRNNLayersWithRNNCellParams_ReachesTargetSparsity(self):
        model = keras.Sequential()
        model.add(
            prune.prune_low_magnitude(
                keras.layers.RNN(
                    [layers.LSTMCell(10), layers.GRUCell(10), layers.SimpleRNNCell(10)]
                ),
                input_shape=(3, 4),
                **self.params,
            )
        )

        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        assert_model_sparsity(self, 0.0, model)
        model.fit(
            np.random.randn(*self._batch(model.inputs[0].shape, 32)),
            np.random.randn(*self._batch(model.outputs[0].shape, 32)),
            callbacks=[pruning_callbacks.UpdatePruningStep()],
        )

        assert_model_sparsity(self, 0.5, model)

        self._check_strip_pruning_matches_original(model, 0.5)

    def testPrunesEmbedding_ReachesTargetSparsity(self):
        model = keras.Sequential()
        model.add(
            prune.prune_low_magnitude(
                layers.Embedding(input_dim=10, output_dim=3), input_shape=(5,), **self.params
            )
        )
        model.add(layers.Flatten())
        model.add(layers.Dense(1, activation="sigmoid"))

        model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
        assert_model_sparsity(self, 0.0, model)
        model.fit(
            np.random.randint(10, size=(32, 5)),
            np.random.randint(2, size=(32, 1)),
            callbacks=[pruning_callbacks.UpdatePruningStep()],
        )

        assert_model_sparsity(self, 0.5, model)

        input_data = np.random.randint(10, size=(32, 5))
        self._check_strip_pruning_matches_original(model, 0.5, input_data)

    def testPruneRecursivelyReachesTargetSparsity(self):
        internal_model = keras.Sequential([keras.layers.Dense(10, input_shape=(10,))])
        model = keras.Sequential([internal_model, layers.Flatten(), layers.Dense(1)])
        model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
        assert_model_sparsity(self, 0.0, model)
        model.fit(
            np.random.randint(10, size=(32, 10)),
            np.random.randint(2, size=(32, 1)),
            callbacks=[pruning_callbacks.UpdatePruningStep()],
        )

        assert_model_sparsity(self, 0.5, model)

        input_data = np.random.randint(10, size=(32, 10))
        self._check_strip_pruning_matches_original(model, 0.5, input_data)

    # slow under the parameters decorator: absl copies the function's marks onto each case it generates
    @parameterized.parameters(model_type_keys())
    @pytest.mark.slow
    def testPrunesMnist_ReachesTargetSparsity(self, model_type):
        model = build_mnist_model(model_type, self.params)
        if model_type == "layer_list":
            model = keras.Sequential(prune.prune_low_magnitude(model, **self.params))
        elif model_type in ["sequential", "functional"]:
            model = prune.prune_low_magnitude(model, **self.params)

        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        assert_model_sparsity(self, 0.0, model, rtol=1e-4, atol=1e-4)
        model.fit(
            np.random.rand(32, 28, 28, 1),
            keras.utils.to_categorical(np.random.randint(10, size=(32, 1)), 10),
            callbacks=[pruning_callbacks.UpdatePruningStep()],
        )

        assert_model_sparsity(self, 0.5, model, rtol=1e-4, atol=1e-4)

        self._check_strip_pruning_matches_original(model, 0.5)

    ###################################################################
    # Tests for pruning with checkpointing.

    @pytest.mark.xfail(
        strict=True,
        reason="deliberate: the mask is applied to the kernel before every pruned step and "
        "after every epoch, so checkpoints are sparse (tfmot's issue 206 is fixed)",
    )
    def testPruneCheckpoints_CheckpointsNotSparse(self):
        is_model_sparsity_not_list = []

        # Run multiple times since problem doesn't always happen.
        for _ in range(3):
            model = build_simple_dense_model()
            pruned_model = prune.prune_low_magnitude(model, **self.params)

            checkpoint_dir = tempfile.mkdtemp()
            checkpoint_path = checkpoint_dir + "/weights.{epoch:02d}.{batch:02d}.weights.h5"

            callbacks = [
                pruning_callbacks.UpdatePruningStep(),
                keras.callbacks.ModelCheckpoint(
                    filepath=checkpoint_path, save_weights_only=True, save_freq=1
                ),
            ]

            # Train one step. Sparsity reaches final sparsity.
            self._train_model(pruned_model, epochs=1, callbacks=callbacks)
            assert_model_sparsity(self, 0.5, pruned_model)

            latest_checkpoint = max(glob.glob(os.path.join(checkpoint_dir, "*.weights.h5")))

            same_architecture_model = build_simple_dense_model()
            pruned_model = prune.prune_low_magnitude(same_architecture_model, **self.params)

            # Sanity check.
            assert_model_sparsity(self, 0, pruned_model)

            pruned_model.load_weights(latest_checkpoint)
            is_model_sparsity_not_list.append(is_model_sparsity_not(0.5, pruned_model))

        self.assertTrue(any(is_model_sparsity_not_list))

    @parameterized.parameters([save_restore_keras_model])
    def testPruneStopAndRestart_PreservesSparsity(self, save_restore_fn):
        begin_step, end_step = 1, 4
        params = self.params
        params["pruning_schedule"] = pruning_schedule.PolynomialDecay(
            0.2, 0.6, begin_step, end_step, 3, 1
        )

        model = prune.prune_low_magnitude(build_simple_dense_model(), **params)
        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        # Model hasn't been trained yet. Sparsity 0.0
        assert_model_sparsity(self, 0.0, model)

        # Train only 1 step. Sparsity 0.2 (initial_sparsity)
        self._train_model(model, epochs=1)
        assert_model_sparsity(self, 0.2, model)

        model = save_restore_fn(model)

        # Training has run all 4 steps. Sparsity 0.6 (final_sparsity)
        self._train_model(model, epochs=3)
        assert_model_sparsity(self, 0.6, model)

        self._check_strip_pruning_matches_original(model, 0.6)

    @parameterized.parameters([save_restore_keras_model])
    def testPruneWithPolynomialDecayPastEndStep_PreservesSparsity(self, save_restore_fn):
        begin_step, end_step = 0, 2
        params = self.params
        params["pruning_schedule"] = pruning_schedule.PolynomialDecay(
            0.2, 0.6, begin_step, end_step, 3, 1
        )

        model = prune.prune_low_magnitude(build_simple_dense_model(), **params)
        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])

        # Model hasn't been trained yet. Sparsity 0.0
        assert_model_sparsity(self, 0.0, model)

        # Train 3 steps, past end_step. Sparsity 0.6 (final_sparsity)
        self._train_model(model, epochs=3)
        assert_model_sparsity(self, 0.6, model)

        model = save_restore_fn(model)

        # Ensure sparsity is preserved.
        assert_model_sparsity(self, 0.6, model)

        # Train one more step to ensure nothing happens that brings sparsity
        # back below 0.6.
        self._train_model(model, epochs=1)
        assert_model_sparsity(self, 0.6, model)

        self._check_strip_pruning_matches_original(model, 0.6)


class PruneIntegrationCustomTrainingLoopTest(TestCase, parameterized.TestCase):
    def testPrunesModel_CustomTrainingLoop_ReachesTargetSparsity(self):
        pruned_model = prune.prune_low_magnitude(
            build_simple_dense_model(),
            pruning_schedule=pruning_schedule.ConstantSparsity(
                target_sparsity=0.5, begin_step=0, frequency=1
            ),
        )

        batch_size = 20
        x_train = np.random.rand(20, 10)
        y_train = keras.utils.to_categorical(np.random.randint(5, size=(batch_size, 1)), 5)

        loss = keras.losses.categorical_crossentropy
        optimizer = keras.optimizers.SGD()

        unused_arg = -1

        step_callback = pruning_callbacks.UpdatePruningStep()
        step_callback.set_model(pruned_model)
        pruned_model.optimizer = optimizer

        step_callback.on_train_begin()
        # 2 epochs
        for _ in range(2):
            step_callback.on_train_batch_begin(batch=unused_arg)
            inp = np.reshape(x_train, [batch_size, 10])  # original shape: from [10].
            with tf.GradientTape() as tape:
                logits = pruned_model(inp, training=True)
                loss_value = loss(y_train, logits)
                grads = tape.gradient(loss_value, pruned_model.trainable_variables)
                optimizer.apply_gradients(zip(grads, pruned_model.trainable_variables))
            step_callback.on_epoch_end(batch=unused_arg)

        assert_model_sparsity(self, 0.5, pruned_model)
