"""The architecture families of issue 18 at the smallest input each accepts (10 classes, weights=None).

Shared by ``tests/test_architectures.py`` (the matrix) and
``bench/bench_architectures.py`` (accuracy after a short fine-tune).
Each family says what to expect from each step where it is not plain success:
``ptq``: None (full int8), or the start of the error the TFLite converter
gives; ``qat``: None (full int8 with no calibration data) or a
QuantizationError's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras

L = keras.layers
A = keras.applications


@dataclass(frozen=True)
class Family:
    build: Callable[[], keras.Model]
    integer_input: bool = False  # token ids (an Embedding model)
    ptq: str | None = None  # expected PTQ int8 failure ("NEG": LayerNormalization's NEG stays float)
    ptq_runs: bool = True  # False: PTQ int8 calibration crashes TF's calibrator (GRU), not run here
    notes: dict = field(default_factory=dict)


def text_classifier(vocabulary=1000, length=16, classes=10):
    """Conv1D + GRU over token ids."""
    inp = keras.Input((length,), dtype="int32", name="tokens")
    x = L.Embedding(vocabulary, 16, name="embedding")(inp)
    x = L.Conv1D(16, 3, padding="same", activation="relu", name="conv1d")(x)
    x = L.MaxPooling1D(2, name="pool")(x)
    x = L.GRU(16, name="gru")(x)
    return keras.Model(inp, L.Dense(classes, name="logits")(x), name="text_gru")


def vit_block(image=8, patch=4, dim=16, heads=2, classes=10):
    """Patch embedding, one pre-norm transformer block (LayerNormalization, MultiHeadAttention, GELU MLP)."""
    inp = keras.Input((image, image, 3), name="image")
    x = L.Conv2D(dim, patch, strides=patch, name="patches")(inp)
    x = L.Reshape(((image // patch) ** 2, dim), name="tokens")(x)
    h = L.LayerNormalization(epsilon=1e-6, name="ln1")(x)
    h = L.MultiHeadAttention(heads, dim // heads, name="mha")(h, h)
    x = L.Add(name="res1")([x, h])
    h = L.LayerNormalization(epsilon=1e-6, name="ln2")(x)
    h = L.Dense(2 * dim, activation="gelu", name="mlp1")(h)
    x = L.Add(name="res2")([x, L.Dense(dim, name="mlp2")(h)])
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inp, L.Dense(classes, name="logits")(x), name="vit_block")


def _app(fn, size, **kw):
    return lambda: fn(weights=None, input_shape=(size, size, 3), classes=10, **kw)


FAMILIES = {
    "MobileNetV2": Family(_app(A.MobileNetV2, 32, alpha=0.35)),
    "MobileNetV3Small-min": Family(_app(A.MobileNetV3Small, 32, minimalistic=True)),
    "MobileNetV3Small": Family(_app(A.MobileNetV3Small, 32)),
    "text-Conv1D-GRU": Family(text_classifier, integer_input=True, ptq_runs=False),
    "ViT-block": Family(vit_block, ptq="NEG"),
    "ResNet50": Family(_app(A.ResNet50, 32)),
    "InceptionV3": Family(_app(A.InceptionV3, 75)),
    "EfficientNetB0": Family(_app(A.EfficientNetB0, 32)),
    "DenseNet121": Family(_app(A.DenseNet121, 32)),
    "Xception": Family(_app(A.Xception, 71)),
    "NASNetMobile": Family(_app(A.NASNetMobile, 32)),
    "ConvNeXtTiny": Family(_app(A.ConvNeXtTiny, 32), ptq="NEG"),
}


def pixel_scale(model) -> float:
    """255 for models that rescale their input themselves (a Rescaling / Normalization first), else 1."""
    first = next((layer for layer in model.layers if not isinstance(layer, L.InputLayer)), None)
    return 255.0 if isinstance(first, (L.Rescaling, L.Normalization)) else 1.0


def sample_inputs(model, n, seed=0):
    """``n`` random inputs of the model's shape and range (pixels, or token ids)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return rng.integers(1, 1000, shape).astype("int32")
    return (rng.random(shape) * pixel_scale(model)).astype("float32")
