"""Keras 3 versions of the tfmot test utilities the ported suites use.

Written for keras_compress from what tfmot's ``keras/test_utils.py`` and
``sparsity/keras/test_utils.py`` do (build_simple_dense_model,
assert_model_sparsity, ModelCompare, the MNIST models, save/restore).
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_compress import pruning as prune

l = keras.layers


class TestCase(tf.test.TestCase):
    """tf.test.TestCase (assertAllClose, evaluate, ...) as tfmot's tests use it."""

    # tf.test.TestCase's deprecated helper, which pytest would list as a skipped test.
    test_session = None


def build_simple_dense_model():
    return keras.Sequential(
        [l.Dense(8, activation="relu", input_shape=(10,)), l.Dense(5, activation="softmax")]
    )


def get_value(variable):
    return keras.ops.convert_to_numpy(variable)


def _get_sparsity(weights):
    return 1.0 - np.count_nonzero(weights) / float(weights.size)


def _prunable_weights(model):
    for layer in model.layers:
        if isinstance(layer, prune.PruneLowMagnitude):
            yield from layer.get_prunable_weights()


def assert_model_sparsity(test_case, sparsity, model, rtol=1e-6, atol=1e-6):
    for weight in _prunable_weights(model):
        test_case.assertAllClose(sparsity, _get_sparsity(get_value(weight)), rtol=rtol, atol=atol)


def is_model_sparsity_not(sparsity, model):
    return any(sparsity != _get_sparsity(get_value(w)) for w in _prunable_weights(model))


def assert_model_sparsity_m_by_n(test_case, model, m_by_n=(2, 4)):
    """Every group of n consecutive input weights of each rank-2/4 pruned weight has m zeros."""
    m, n = m_by_n
    checked = 0
    for weight in _prunable_weights(model):
        w = get_value(weight)
        if w.ndim not in (2, 4):
            continue
        rows = np.moveaxis(w, 0 if w.ndim == 2 else -2, -1).reshape(-1, w.shape[0 if w.ndim == 2 else -2])
        usable = rows.shape[1] - rows.shape[1] % n
        groups = rows[:, :usable].reshape(-1, n)
        test_case.assertTrue(np.all((groups == 0).sum(axis=1) >= m), f"{weight.path} is not {m}:{n}")
        checked += 1
    test_case.assertGreater(checked, 0)


def _build_mnist_layer_list():
    return [
        l.Conv2D(32, 5, padding="same", activation="relu", input_shape=(28, 28, 1)),
        l.MaxPooling2D((2, 2), (2, 2), padding="same"),
        l.BatchNormalization(),
        l.Conv2D(64, 5, padding="same", activation="relu"),
        l.MaxPooling2D((2, 2), (2, 2), padding="same"),
        l.Flatten(),
        l.Dense(1024, activation="relu"),
        l.Dropout(0.4),
        l.Dense(10, activation="softmax"),
    ]


def _build_mnist_functional_model():
    inp = keras.Input(shape=(28, 28, 1))
    x = l.Conv2D(32, 5, padding="same", activation="relu")(inp)
    x = l.MaxPooling2D((2, 2), (2, 2), padding="same")(x)
    x = l.BatchNormalization()(x)
    x = l.Conv2D(64, 5, padding="same", activation="relu")(x)
    x = l.MaxPooling2D((2, 2), (2, 2), padding="same")(x)
    x = l.Flatten()(x)
    x = l.Dense(1024, activation="relu")(x)
    x = l.Dropout(0.4)(x)
    out = l.Dense(10, activation="softmax")(x)
    return keras.Model([inp], [out])


def _build_mnist_layerwise_pruned_model(pruning_params):
    p = prune.prune_low_magnitude
    return keras.Sequential(
        [
            p(l.Conv2D(32, 5, padding="same", activation="relu"), input_shape=(28, 28, 1),
              **pruning_params),
            l.MaxPooling2D((2, 2), (2, 2), padding="same"),
            l.BatchNormalization(),
            p(l.Conv2D(64, 5, padding="same", activation="relu"), **pruning_params),
            l.MaxPooling2D((2, 2), (2, 2), padding="same"),
            l.Flatten(),
            p(l.Dense(1024, activation="relu"), **pruning_params),
            l.Dropout(0.4),
            p(l.Dense(10, activation="softmax"), **pruning_params),
        ]
    )


def build_mnist_model(model_type, pruning_params=None):
    return {
        "sequential": lambda: keras.Sequential(_build_mnist_layer_list()),
        "functional": _build_mnist_functional_model,
        "layer_list": _build_mnist_layer_list,
        "layer_wise": lambda: _build_mnist_layerwise_pruned_model(pruning_params),
    }[model_type]()


def model_type_keys():
    return ["sequential", "functional", "layer_list", "layer_wise"]


def save_restore_keras_model(model):
    """tfmot's `_save_restore_keras_model` (its `.h5` is `.keras` in Keras 3)."""
    keras_file = os.path.join(tempfile.mkdtemp(), "model.keras")
    keras.models.save_model(model, keras_file)
    with prune.prune_scope():
        return keras.models.load_model(keras_file)


def temp_weights_file():
    """tfmot's `tempfile.mkstemp('.h5')` for weights: Keras 3 needs `.weights.h5`."""
    return os.path.join(tempfile.mkdtemp(), "w.weights.h5")


class ModelCompare:
    """tfmot's ModelCompare mixin: compare two models' trainable weights."""

    def _assert_weights_same_objects(self, model1, model2):
        self.assertEqual(len(model1.trainable_weights), len(model2.trainable_weights))
        for w1, w2 in zip(model1.trainable_weights, model2.trainable_weights):
            self.assertEqual(id(w1), id(w2))

    def _assert_weights_different_objects(self, model1, model2):
        self.assertEqual(len(model1.trainable_weights), len(model2.trainable_weights))
        for w1, w2 in zip(model1.trainable_weights, model2.trainable_weights):
            self.assertNotEqual(id(w1), id(w2))

    def _assert_weights_same_values(self, model1, model2):
        self.assertEqual(len(model1.trainable_weights), len(model2.trainable_weights))
        for w1, w2 in zip(model1.trainable_weights, model2.trainable_weights):
            self.assertAllClose(get_value(w1), get_value(w2))

    def _assert_weights_different_values(self, model1, model2):
        self.assertEqual(len(model1.trainable_weights), len(model2.trainable_weights))
        for w1, w2 in zip(model1.trainable_weights, model2.trainable_weights):
            self.assertNotAllClose(get_value(w1), get_value(w2))
