"""The small functional CNN the search tests compress (conv1 -> pool -> conv2 -> flatten -> fc -> logits).

Its fixtures ``data8`` and ``tiny`` (module-scoped) reach every test through tests/conftest.py's ``pytest_plugins``;
a test module with its own ``tiny`` keeps it.
"""

from __future__ import annotations

import pytest


def tiny_model(input_shape, data, epochs: int = 3):
    """Built and trained on ``data``'s training split with seed 0; layer names as the tests expect."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inputs = keras.Input(input_shape)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(32, activation="relu", name="fc")(x)
    model = keras.Model(inputs, L.Dense(10, name="logits")(x), name="tiny")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    (x_train, y_train), _ = data
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def data8():
    """The digits at 8x8."""
    from keras_compress.datasets import load_digits

    return load_digits(image_size=8)


@pytest.fixture(scope="module")
def tiny(data8):
    """:func:`tiny_model` trained on ``data8``."""
    return tiny_model((8, 8, 1), data8)
