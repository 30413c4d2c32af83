"""Build small int8 .tflite models with TensorFlow for the edgetpu tests.

Only the tests import this (TensorFlow is a test-time dependency of the
`edgetpu` tests, never of `edgetpu` itself). Conversions are slow (seconds
each; MobileNetV2 224 ~30-60 s on 2 cores), so tests call them from
session-scoped fixtures and cache the bytes on disk.

Route: ``model.export(dir)`` then ``tf.lite.TFLiteConverter.from_saved_model``
with full-integer settings (EDGETPU.md: from_keras_model is unreliable with
Keras 3). ``static_batch=True`` pins the batch to 1, as
``to_tflite(target="edgetpu")`` is meant to; ``False`` leaves the batch
dynamic (shape_signature -1), the converter's default.

TODO(lead): switch to keras_compress.convert.to_tflite(..., target="edgetpu")
once it exists.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


def convert_int8(model, *, io_type="int8", static_batch=True, float_model=False, samples=4, seed=0):
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(seed)

    def rep():
        for _ in range(samples):
            yield [rng.uniform(-1, 1, size=(1,) + shape).astype(np.float32)]

    with tempfile.TemporaryDirectory() as d:
        if static_batch:
            model.export(d, verbose=False, input_signature=[tf.TensorSpec((1,) + shape, tf.float32)])
        else:
            model.export(d, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d)
        if not float_model:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io_type == "int8":
                conv.inference_input_type = tf.int8
                conv.inference_output_type = tf.int8
            elif io_type == "uint8":
                conv.inference_input_type = tf.uint8
                conv.inference_output_type = tf.uint8
        return conv.convert()


def mobilenet_v2_224():
    import keras

    return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))


def mobilenet_v3_small(size=96):
    import keras

    return keras.applications.MobileNetV3Small(
        weights=None, input_shape=(size, size, 3), include_preprocessing=False
    )


def mobilenet_v1_style(size=64):
    import keras
    from keras import layers

    x = inp = keras.Input((size, size, 3))
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    for filters, stride in [(32, 1), (64, 2), (64, 1), (128, 2)]:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, x)


def resnet_style(size=64):
    import keras
    from keras import layers

    x = inp = keras.Input((size, size, 3))
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(2)(x)
    for filters in (16, 32):
        shortcut = x
        if shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1)(shortcut)
        y = layers.Conv2D(filters, 3, padding="same")(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        y = layers.BatchNormalization()(y)
        x = layers.Activation("relu")(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, x)


def leaky_relu_model(size=32):
    import keras
    from keras import layers

    x = inp = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.LeakyReLU(0.1)(x)
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(4)(x)
    return keras.Model(inp, x)


def tiny_cnn(size=16):
    import keras
    from keras import layers

    x = inp = keras.Input((size, size, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(3)(x)
    return keras.Model(inp, x)


def cached(cache_dir, name, build):
    """Return bytes from cache_dir/name, building them with build() the first time."""
    path = os.path.join(cache_dir, name)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    data = build()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data
