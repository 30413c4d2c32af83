"""The one exception family of `keras_compress`.

Everything raised on purpose is a :class:`CompressError`; messages name the
layer, file or field concerned, what was expected and what was found.
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
    "DecompositionError",
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


class DecompositionError(CompressError, ValueError):
    """A layer or model cannot be factorized as asked, or a rank / energy / ratio setting is invalid."""
