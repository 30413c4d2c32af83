"""Model builders by name, with a width multiplier, for recipes and benchmarks.

Every builder returns a Functional model that outputs **logits** and whose
layers have stable names, so feature distillation can name the same layer in
a teacher and a student of another width:

- ``"cnn"``: three conv blocks (``conv1``-``conv3``, ``pool1``-``pool3``), flatten, a
  dense layer ``fc`` (then ``dropout`` when asked) and ``logits``. Width 1.0:
  32/64/128 filters, 64 units (224k parameters on 32x32x1, the demo's
  baseline; 225k on 32x32x3, where width 0.375 has 32k, 7x fewer).
- ``"mobilenet_v2"``: a small MobileNetV2-style net for 32x32 inputs:
  ``stem``, inverted-residual blocks ``block1``-``block6`` (ReLU6, batch norm,
  residual adds), ``head`` (1x1 conv), global pooling and ``logits``. Every
  op maps to the Edge TPU.

:func:`build_model` also takes a path to a saved ``.keras`` model.

Example:
    >>> from keras_compress.recipes.builders import build_model
    >>> m = build_model("cnn", (32, 32, 3), 10, width=0.5)
    >>> m.get_layer("conv3").filters, m.output.shape[-1]
    (64, 10)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from keras_compress.errors import ConfigError

__all__ = ["BUILDERS", "build_model", "build_cnn", "build_mobilenet_v2", "scaled"]


def scaled(channels: int, width: float, divisor: int = 4) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(round(channels * width / divisor)) * divisor)


def build_cnn(input_shape, num_classes: int, width: float = 1.0, name: str = "cnn", dropout: float = 0.0):
    """A small CNN for 32x32 digits / shapes: 3 x (conv3x3-ReLU, maxpool), flatten, dense, [dropout], logits."""
    import keras

    L = keras.layers
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for i, filters in enumerate((32, 64, 128)):
        x = L.Conv2D(scaled(filters, width), 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = L.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(scaled(64, width), activation="relu", name="fc")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_mobilenet_v2(input_shape, num_classes: int, width: float = 1.0, name: str = "mobilenet_v2", dropout: float = 0.0):
    """A MobileNetV2-style net sized for 32x32 inputs (ReLU6, BN, inverted residuals), [dropout] before the logits."""
    import keras

    L = keras.layers

    def conv_bn(x, filters, kernel, stride, name, act=True):
        x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
        x = L.BatchNormalization(name=f"{name}_bn")(x)
        return L.ReLU(6.0, name=f"{name}_relu")(x) if act else x

    def block(x, filters, stride, expansion, name):
        in_ch = x.shape[-1]
        y = conv_bn(x, in_ch * expansion, 1, 1, f"{name}_expand")
        y = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
        y = L.BatchNormalization(name=f"{name}_dw_bn")(y)
        y = L.ReLU(6.0, name=f"{name}_dw_relu")(y)
        y = conv_bn(y, filters, 1, 1, f"{name}_project", act=False)
        if stride == 1 and in_ch == filters:
            y = L.Add(name=f"{name}_add")([x, y])
        return L.Identity(name=name)(y)

    inputs = keras.Input(tuple(input_shape), name="image")
    x = conv_bn(inputs, scaled(16, width), 3, 1, "stem")
    # (filters, stride): 32 -> 16 -> 8 -> 4
    for i, (filters, stride) in enumerate(((16, 1), (24, 2), (24, 1), (32, 2), (32, 1), (64, 2))):
        x = block(x, scaled(filters, width), stride, 4, f"block{i + 1}")
    x = conv_bn(x, scaled(128, width), 1, 1, "head")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


BUILDERS: dict[str, Callable] = {"cnn": build_cnn, "mobilenet_v2": build_mobilenet_v2}


def build_model(model: str, input_shape, num_classes: int, width: float = 1.0, name: str | None = None, dropout: float = 0.0):
    """Build a model by builder name, or load a saved ``.keras`` file.

    Args:
        model: a key of :data:`BUILDERS` or a path ending in ``.keras``.
        input_shape: input shape without the batch axis.
        num_classes: number of output logits.
        width: width multiplier (builders only).
        name: model name (default: the builder's name).
        dropout: dropout rate before the logits (builders only; 0: no Dropout layer).

    Raises:
        ConfigError: unknown builder, missing file, or a loaded model whose
            input or output shape does not fit the data.
    """
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".keras"):
        import keras

        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"model: file {str(path)!r} does not exist (expected a builder name or a saved .keras file)")
        try:
            loaded = keras.models.load_model(path, compile=False)
        except Exception as e:  # noqa: BLE001 - loading fails in many ways; report it as bad input
            raise ConfigError(f"model: could not load {str(path)!r}: {type(e).__name__}: {e}") from None
        got_in = tuple(loaded.inputs[0].shape[1:])
        got_out = loaded.outputs[0].shape[-1]
        if got_in != tuple(input_shape) or got_out != num_classes:
            raise ConfigError(
                f"model: {str(path)!r} takes {got_in} and outputs {got_out} classes; the dataset has "
                f"{tuple(input_shape)} inputs and {num_classes} classes"
            )
        return loaded
    if model not in BUILDERS:
        raise ConfigError(
            f"model: expected one of {', '.join(map(repr, BUILDERS))} or a path to a .keras file, got {model!r}"
        )
    return BUILDERS[model](input_shape, num_classes, width=width, name=name or model, dropout=dropout)
