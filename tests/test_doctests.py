"""The docstring examples of every module of both packages run, and pass.

Modules are collected by walking the packages, so a module added by anyone is
picked up without touching this file. A module whose examples need a missing
optional dependency is reported as skipped with the import error.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import edgetpu
import keras_compress

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: Modules of this session's core (pipeline, recipes, demo, CLI, ...): each must show at least one example.
MUST_HAVE_EXAMPLES = (
    "keras_compress",
    "keras_compress.errors",
    "keras_compress.machine",
    "keras_compress.progress",
    "keras_compress.summary",
    "keras_compress.cli",
    "keras_compress.demo",
    "keras_compress.datasets",
    "keras_compress.distillation",
    "keras_compress.pipeline",
    "keras_compress.recipes",
    "keras_compress.pruning.report",
    "keras_compress.pruning.recipes",
    *(f"keras_compress.pruning.{m}" for m in ("schedules", "masks", "prune", "strip", "structured", "wrapper",
                                               "registry", "modelcopy")),
    *(f"keras_compress.convert.{m}" for m in ("options", "calibration", "layers", "recurrent", "runtime", "interrupts",
                                               "checks", "converter", "isolation", "tflite")),
    *(f"edgetpu.{m}" for m in ("flatbuffer", "model", "rules", "partition", "runtime_versions", "check_result",
                               "validation", "op_signatures", "errors", "files", "backend", "runtime", "bench",
                               "isolate")),
)


def _modules() -> list[str]:
    names = []
    for package in (keras_compress, edgetpu):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_the_walk_finds_the_modules():
    assert "keras_compress.pipeline.stages.prune" in MODULES and "edgetpu.model" in MODULES
    assert len(MODULES) > 40


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see the output above)"
    if name in MUST_HAVE_EXAMPLES or name.startswith(("keras_compress.pipeline.", "keras_compress.recipes.")):
        assert result.attempted > 0, f"{name} has no docstring example"
