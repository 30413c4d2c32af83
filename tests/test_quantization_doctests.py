"""The docstring examples of keras_compress.quantization run and say what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_compress.quantization.quantizers",
    "keras_compress.quantization.registry",
    "keras_compress.quantization.wrapper",
    "keras_compress.quantization.quantize",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
