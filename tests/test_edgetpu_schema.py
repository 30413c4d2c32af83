"""edgetpu.schema: the shipped schema facts equal those of ai_edge_litert's generated schema module."""

from __future__ import annotations


import pytest
from fakes.schema_tables import render, tables

from edgetpu import schema

from ai_edge_litert import schema_py_generated as generated  # ai-edge-litert is a dependency of the package


@pytest.mark.parametrize("name", ["BUILTIN_OPERATORS", "TENSOR_TYPES", "ACTIVATION_FUNCTIONS", "BUILTIN_OPTIONS",
                                  "BUILTIN_OPTIONS2", "SLOTS"])
def test_shipped_tables_match_the_generated_schema(name):
    """If this fails, the schema grew: regenerate with `python tests/fakes/schema_tables.py > edgetpu/schema.py`."""
    assert getattr(schema, name) == tables(generated)[name]


def test_the_shipped_module_is_exactly_what_the_generator_writes():
    with open(schema.__file__, encoding="utf-8") as f:
        assert f.read() == render(tables(generated))


def test_known_facts():
    assert schema.BUILTIN_OPERATORS[3] == "CONV_2D" and schema.BUILTIN_OPERATORS[44] == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    assert schema.TENSOR_TYPES[9] == "INT8" and schema.TENSOR_TYPES[7] == "INT16"
    conv = {f: (k, s, d) for f, k, s, d in schema.BUILTIN_OPTIONS[1][1]}
    assert schema.BUILTIN_OPTIONS[1][0] == "Conv2DOptions"
    assert conv["strideW"] == ("i", 6, 0) and conv["dilationHFactor"] == ("i", 14, 1)
    assert schema.SLOTS["Operator"]["Intermediates"] == 20 and schema.SLOTS["Tensor"]["ShapeSignature"] == 18


