"""The docstring examples of keras_compress.convert run and show what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_compress.convert.options",
    "keras_compress.convert.calibration",
    "keras_compress.convert.layers",
    "keras_compress.convert.recurrent",
    "keras_compress.convert.runtime",
    "keras_compress.convert.interrupts",
    "keras_compress.convert.checks",
    "keras_compress.convert.converter",
    "keras_compress.convert.isolation",
    "keras_compress.convert.tflite",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
