"""The docstring examples of the edgetpu deployment modules run and say what they show.

(The model reader and check modules have their own; a suite-wide doctest runner
may take these over.)
"""

import doctest
import importlib

import pytest

MODULES = ["edgetpu.errors", "edgetpu.files", "edgetpu.backend", "edgetpu.runtime", "edgetpu.bench", "edgetpu.isolate"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
