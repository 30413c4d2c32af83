"""Shared fixtures: small data, one small trained CNN and its TFLite conversions.

Conversions cost seconds each on two cores, so they are made once per session.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

# Edge TPU fixtures: hand-built and converted .tflite models, the fake compiler, a fake libedgetpu;
# the search tests' tiny CNN (data8, tiny).
pytest_plugins = ["fakes.fixtures", "search_helpers"]


@pytest.fixture(scope="session")
def digits():
    from keras_compress.datasets import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def small_cnn(digits):
    """A small digits CNN trained for a few epochs (fixed seed): ~97% test accuracy."""
    import keras

    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            L.Conv2D(16, 3, activation="relu", padding="same"),
            L.MaxPooling2D(),
            L.Conv2D(32, 3, activation="relu", padding="same"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(10),
        ],
        name="small_cnn",
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=4, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def small_tflite(small_cnn, digits):
    """{mode: bytes} for every conversion mode of ``small_cnn``."""
    from keras_compress.convert import to_tflite

    (x_train, _), _ = digits
    out = {}
    for mode in ("float32", "float16", "dynamic", "int8", "int16x8"):
        calib = x_train[:64] if mode in ("int8", "int16x8") else None
        out[mode] = to_tflite(small_cnn, quantization=mode, representative_data=calib, verbose=False)
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)
