"""keras-compress: prune, distil and quantization-aware-train Keras 3 models,
convert them to full-integer TFLite, and check and run them on the Edge TPU or CPU.

Submodules (import what you need; nothing heavy is imported here, and no
environment variable is set):

    keras_compress.pruning        magnitude pruning (tfmot names), filter pruning
    keras_compress.clustering     weight clustering (tfmot names), cluster-preserving QAT hooks
    keras_compress.quantization   quantization-aware training (tfmot names)
    keras_compress.distillation   knowledge distillation on keras.distillation
    keras_compress.decomposition  low-rank factorization of Dense / Conv (SVD, channel, spatial)
    keras_compress.convert        to_tflite, compare
    keras_compress.pipeline       one compression run = a list of stages
    keras_compress.recipes        recipes (YAML / JSON); ``keras_compress.compress(recipe)`` runs one
    keras_compress.datasets       offline datasets and loaders
    keras_compress.report         the HTML report of a run folder
    keras_compress.machine        CPU and the ISA features that decide int8 speed

Example:
    >>> import keras_compress
    >>> issubclass(keras_compress.ConfigError, keras_compress.CompressError)
    True
"""

from keras_compress.errors import (
    CalibrationDataError,
    ClusteringError,
    CompressError,
    ConfigError,
    ConversionError,
    DatasetError,
    DistillationError,
    OutputError,
    DecompositionError,
    PruningError,
    QuantizationError,
    ReportError,
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
    "DistillationError",
    "ReportError",
    "OutputError",
    "DecompositionError",
    "ClusteringError",
    "compress",
    "__version__",
]


def __getattr__(name: str):
    # `compress` pulls in the pipeline (and TensorFlow when it runs): load it on first use only.
    if name == "compress":
        from keras_compress.pipeline.run import compress

        return compress
    raise AttributeError(f"module 'keras_compress' has no attribute {name!r}")
