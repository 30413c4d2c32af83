"""Layers for the conversion tests that must load in the separate converter process (importable, registered)."""

import keras


@keras.saving.register_keras_serializable(package="kc_convert_tests")
class QRLayer(keras.layers.Layer):
    """Q of a 4x4 QR decomposition: tf.Qr, which has no TFLite builtin (the converter refuses it)."""

    def call(self, x):
        return keras.ops.reshape(keras.ops.qr(keras.ops.reshape(x, (-1, 4, 4)))[0], (-1, 16))

    def compute_output_shape(self, input_shape):
        return input_shape
