"""Port of tfmot's sparsity/keras/pruning_callbacks_test.py to keras_compress on Keras 3.

Same test names and assertions, except:
- ``pruning_step`` after 3 batches is 3, the value tfmot 0.8.1 gives (its
  wrapper counts the step; measured on tf_keras 2.21). The tfmot file in the
  index asserts 2, from the older callback that wrote ``optimizer.iterations``
  before each batch.
- Training without ``UpdatePruningStep`` raises ``PruningError`` (a
  ``ValueError``) in Python; tfmot's ``tf.debugging`` assert raised
  ``InvalidArgumentError`` from inside the graph.
- ``tf.keras.backend.get_value`` is ``keras.ops.convert_to_numpy``.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tfmot_compat import TestCase, build_simple_dense_model, get_value

from keras_compress.errors import PruningError
from keras_compress.pruning import callbacks as pruning_callbacks
from keras_compress.pruning import prune


class PruneCallbacksTest(TestCase, parameterized.TestCase):
    _BATCH_SIZE = 20

    def _assertLogsExist(self, log_dir):
        self.assertNotEmpty(os.listdir(log_dir))

    def _pruned_model_setup(self, custom_training_loop=False):
        pruned_model = prune.prune_low_magnitude(build_simple_dense_model())

        x_train = np.random.rand(self._BATCH_SIZE, 10)
        y_train = keras.utils.to_categorical(np.random.randint(5, size=(self._BATCH_SIZE, 1)), 5)

        loss = keras.losses.categorical_crossentropy
        optimizer = keras.optimizers.SGD()

        if custom_training_loop:
            return pruned_model, loss, optimizer, x_train, y_train
        else:
            pruned_model.compile(loss=loss, optimizer=optimizer, metrics=["accuracy"])
            return pruned_model, x_train, y_train

    def testUpdatePruningStepsAndLogsSummaries(self):
        log_dir = tempfile.mkdtemp()
        pruned_model, x_train, y_train = self._pruned_model_setup()
        pruned_model.fit(
            x_train,
            y_train,
            batch_size=self._BATCH_SIZE,
            epochs=3,
            callbacks=[
                pruning_callbacks.UpdatePruningStep(),
                pruning_callbacks.PruningSummaries(log_dir=log_dir),
            ],
        )

        self.assertEqual(3, get_value(pruned_model.layers[0].pruning_step))
        self.assertEqual(3, get_value(pruned_model.layers[1].pruning_step))

        self._assertLogsExist(log_dir)

    def testUpdatePruningStepsAndLogsSummaries_CustomTrainingLoop(self):
        log_dir = tempfile.mkdtemp()
        pruned_model, loss, optimizer, x_train, y_train = self._pruned_model_setup(
            custom_training_loop=True
        )

        unused_arg = -1

        step_callback = pruning_callbacks.UpdatePruningStep()
        log_callback = pruning_callbacks.PruningSummaries(log_dir=log_dir)
        # tfmot: "we need a separate API for custom training loops that doesn't
        # rely on users setting the model and optimizer."
        step_callback.set_model(pruned_model)
        log_callback.set_model(pruned_model)
        pruned_model.optimizer = optimizer

        step_callback.on_train_begin()
        for _ in range(3):
            # only one batch given batch_size = 20 and input shape.
            step_callback.on_train_batch_begin(batch=unused_arg)
            inp = np.reshape(x_train, [self._BATCH_SIZE, 10])  # original shape: from [10].
            with tf.GradientTape() as tape:
                logits = pruned_model(inp, training=True)
                loss_value = loss(y_train, logits)
                grads = tape.gradient(loss_value, pruned_model.trainable_variables)
                optimizer.apply_gradients(zip(grads, pruned_model.trainable_variables))
            step_callback.on_epoch_end(batch=unused_arg)
            log_callback.on_epoch_end(batch=unused_arg)

        self.assertEqual(3, get_value(pruned_model.layers[0].pruning_step))
        self.assertEqual(3, get_value(pruned_model.layers[1].pruning_step))
        self._assertLogsExist(log_dir)

    def testPruneTrainingRaisesError_PruningStepCallbackMissing(self):
        pruned_model, x_train, y_train = self._pruned_model_setup()

        # Throws an error since UpdatePruningStep is missing.
        with self.assertRaises(PruningError):
            pruned_model.fit(x_train, y_train)

    def testPruneTrainingLoopRaisesError_PruningStepCallbackMissing_CustomTrainingLoop(self):
        pruned_model, _, _, x_train, _ = self._pruned_model_setup(custom_training_loop=True)

        # Throws an error since UpdatePruningStep is missing.
        with self.assertRaises(PruningError):
            inp = np.reshape(x_train, [self._BATCH_SIZE, 10])  # original shape: [10].
            with tf.GradientTape():
                pruned_model(inp, training=True)
