"""Shared helpers for the pruning tests: tiny models and sparsity assertions."""

from __future__ import annotations

import keras
import numpy as np


def tiny_cnn(input_shape=(8, 8, 1), classes=3, name=None):
    """A ~1k-parameter CNN covering Conv2D, BN, DepthwiseConv2D, Flatten and Dense."""
    inp = keras.Input(input_shape)
    h = keras.layers.Conv2D(8, 3, name="conv_a")(inp)
    h = keras.layers.BatchNormalization(name="bn_a")(h)
    h = keras.layers.ReLU(name="relu_a")(h)
    h = keras.layers.Conv2D(8, 3, name="conv_b")(h)
    h = keras.layers.ReLU(name="relu_b")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dense(16, activation="relu", name="fc")(h)
    out = keras.layers.Dense(classes, name="logits")(h)
    return keras.Model(inp, out, name=name)


def random_data(n=64, shape=(8, 8, 1), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + shape, dtype=np.float32), rng.integers(0, classes, n)


def compile_for_classes(model, lr=1e-2):
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def assert_sparsity(values, expected, tol=0.02, what="weight"):
    values = np.asarray(values)
    sparsity = 1.0 - np.count_nonzero(values) / values.size
    assert abs(sparsity - expected) <= tol, f"{what}: sparsity {sparsity:.3f}, expected {expected}"
    return sparsity
