"""keras-compress: prune, distil and quantization-aware-train Keras 3 models,
convert them to full-integer TFLite, and check and run them on the Edge TPU or CPU.

Submodules (import what you need; nothing heavy is imported here):

    keras_compress.pruning        magnitude pruning (tfmot names)
    keras_compress.quantization   quantization-aware training (tfmot names)
    keras_compress.distillation   knowledge distillation on keras.distillation
    keras_compress.decomposition  low-rank factorization of Dense / Conv (SVD, channel, spatial)
    keras_compress.convert        to_tflite, compare
    keras_compress.datasets       offline datasets and loaders
    keras_compress.recipes        recipes; ``keras_compress.compress(recipe)`` runs one end to end
"""

from keras_compress.errors import (
    CalibrationDataError,
    CompressError,
    ConfigError,
    ConversionError,
    DatasetError,
    DecompositionError,
    PruningError,
    QuantizationError,
)

__version__ = "0.1.0"

__all__ = [
    "CompressError",
    "ConversionError",
    "CalibrationDataError",
    "DatasetError",
    "PruningError",
    "QuantizationError",
    "ConfigError",
    "DecompositionError",
    "compress",
    "__version__",
]


def __getattr__(name: str):
    # `compress` pulls in TensorFlow through the pipeline: load it on first use only.
    if name == "compress":
        from keras_compress.recipes import compress

        return compress
    raise AttributeError(f"module 'keras_compress' has no attribute {name!r}")
