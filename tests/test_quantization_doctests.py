"""The docstring examples of keras_compress.quantization (and the graph reader) run and say what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_compress.graph",
    "keras_compress.quantization.activations",
    "keras_compress.quantization.composite",
    "keras_compress.quantization.config",
    "keras_compress.quantization.kernels",
    "keras_compress.quantization.recurrent",
    "keras_compress.quantization.transform",
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
