"""The ported tfmot suites: each test starts from a fresh Keras session (layer names from 0)."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.backend.clear_session(free_memory=False)  # the gc.collect() it would run costs 1-4 s a test in a full worker
    yield
