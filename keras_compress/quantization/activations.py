"""How each Keras activation becomes int8 in TFLite, and its QAT simulation.

Measured with the TF 2.21 converter on a QAT graph (fake quant on the input
and the output of the activation, no calibration data):

- ``relu``, ``relu6``: fused into the op before (no range of its own).
- ``sigmoid``, ``softmax``, ``tanh``: one op with TFLite's fixed output range.
- ``gelu`` (GELU), ``silu`` / ``swish`` (LOGISTIC + MUL), ``hard_silu`` /
  ``hard_swish`` (HARD_SWISH), ``leaky_relu``, ``exponential``, ``hard_tanh``
  (RELU_N1_TO_1), ``log_softmax``, ``glu``, ``tanh_shrink``, ``soft_shrink``:
  int8 with a learned range on their input and output.
- ``hard_sigmoid``: written as ``relu6(x + 3) * (1/6)`` with a range in
  between (ADD with a fused ReLU6, then MUL).
- the others keep a float op in TFLite's int8 graph (:data:`FLOAT_OP`).

Example:
    >>> import keras
    >>> kind_of_activation(keras.activations.get("relu6")), kind_of_activation(keras.activations.get("gelu"))
    ('fused', 'ranged')
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["FLOAT_OP", "activation_name", "kind_of_activation", "unsupported_reason"]

FUSED = frozenset({"relu", "relu6"})
FIXED = frozenset({"sigmoid", "softmax", "tanh"})
RANGED = frozenset(
    {
        "gelu", "silu", "swish", "hard_silu", "hard_swish", "leaky_relu", "exponential",
        "hard_tanh", "log_softmax", "glu", "tanh_shrink", "soft_shrink",
    }
)  # fmt: skip
DECOMPOSED = frozenset({"hard_sigmoid"})

# Activation -> the op the TFLite converter leaves in float in an int8 graph (measured).
FLOAT_OP = {
    "elu": "ELU",
    "selu": "EXP",
    "softplus": "EXP",
    "softsign": "ABS",
    "celu": "RELU",
    "mish": "EXP",
    "log_sigmoid": "NEG",
    "squareplus": "SQUARE",
    "sparse_plus": "ADD",
    "hard_shrink": "ABS",
    "sparsemax": "CUMSUM",
    "sparse_sigmoid": "ADD",
}


def activation_name(fn) -> str | None:
    """Name of a Keras activation function (``keras.activations.relu`` -> ``"relu"``)."""
    if fn is None:
        return None
    try:
        name = keras.activations.serialize(fn)
    except (ValueError, TypeError, AttributeError):  # a lambda or a custom callable
        name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else getattr(fn, "__name__", None)


def kind_of_activation(fn) -> str | None:
    """``"linear"``, ``"fused"``, ``"fixed"``, ``"ranged"``, ``"decomposed"``, or None (no int8 form)."""
    name = activation_name(fn)
    if name in (None, "linear"):
        return "linear"
    if name in FUSED:
        return "fused"
    if name in FIXED:
        return "fixed"
    if name in RANGED:
        return "ranged"
    if name in DECOMPOSED:
        return "decomposed"
    return None


def unsupported_reason(fn) -> str:
    name = activation_name(fn)
    op = FLOAT_OP.get(name)
    if op:
        return f"activation {name!r} keeps a float {op} op in TFLite's int8 graph"
    return f"activation {name!r} is not one whose int8 TFLite form is known (a custom function?)"


def hard_sigmoid_parts(x):
    """``relu6(x + 3)`` (the ADD with its fused ReLU6): the part before the range in between."""
    return ops.relu6(x + 3.0)


def hard_sigmoid_tail(y):
    """The MUL after the range in between."""
    return y * (1.0 / 6.0)
