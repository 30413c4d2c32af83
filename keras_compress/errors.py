"""The one exception family of `keras_compress`.

Everything raised on purpose is a :class:`CompressError`; messages name the
layer, file or field concerned, what was expected and what was found. Every
class lives here, and carries its data as constructor arguments.

Example:
    >>> from keras_compress.errors import ConfigError, CompressError
    >>> issubclass(ConfigError, CompressError) and issubclass(ConfigError, ValueError)
    True
"""

from __future__ import annotations

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
    "GraphError",
    "UnsupportedLayerError",
    "DecompositionError",
    "ClusteringError",
    "LatencyTableError",
]


class CompressError(Exception):
    """Base class of every error raised by `keras_compress`."""


class ConversionError(CompressError, RuntimeError):
    """The TFLite converter failed; nothing was written."""


class CalibrationDataError(CompressError, ValueError):
    """Representative (calibration) data does not match the model's input."""


class DatasetError(CompressError, ValueError):
    """A dataset could not be loaded (missing folder, failed download, bad arrays)."""


class PruningError(CompressError, ValueError):
    """A layer or model cannot be pruned as asked, or a schedule argument is invalid."""


class QuantizationError(CompressError, ValueError):
    """A layer or model cannot be quantized as asked."""


class ConfigError(CompressError, ValueError):
    """A recipe or config field has a value outside what is allowed."""


class DistillationError(CompressError, ValueError):
    """Teacher, student or a distillation setting cannot work together."""


class ReportError(CompressError, ValueError):
    """A folder cannot make a report (missing folder, no or unreadable summary.json)."""


class OutputError(CompressError, ValueError):
    """An output path cannot be used: a file where a folder is expected, a folder that is not ours, ..."""


class GraphError(CompressError, ValueError):
    """A model's layer graph cannot be read or rebuilt (subclassed model, no inputs, dangling reference)."""


class UnsupportedLayerError(QuantizationError, RuntimeError):
    """A layer or operation has no int8 scheme and no QuantizeConfig (a RuntimeError too, as tfmot raises)."""


class DecompositionError(CompressError, ValueError):
    """A layer or model cannot be factorized as asked, or a rank / energy / ratio setting is invalid."""


class ClusteringError(CompressError, ValueError):
    """A layer or model cannot be clustered as asked, or a clustering argument is invalid."""


class LatencyTableError(CompressError, LookupError):
    """A latency lookup table lacks entries for some layers, or its file cannot be used.

    Args:
        message: what is wrong, naming the layers or the file.
        layers: the names of the layers without an entry (empty for a file problem).
    """

    def __init__(self, message: str, layers: tuple[str, ...] = ()):
        super().__init__(message)
        self.layers = tuple(layers)
