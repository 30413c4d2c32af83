"""The ported tfmot suites: each test starts from a fresh Keras session (layer names from 0)."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.backend.clear_session()
    yield
