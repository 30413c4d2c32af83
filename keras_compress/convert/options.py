"""What a conversion is asked to do: modes, targets and the checked settings of one call.

Every argument of :func:`keras_compress.convert.to_tflite` is checked here,
before any TensorFlow work starts, so a bad value costs nothing and writes
nothing.

Example:
    >>> from keras_compress.convert.options import ConversionOptions
    >>> opts = ConversionOptions.build(quantization="int8", target="edgetpu")
    >>> opts.mode.value, opts.input_type, opts.batch_size
    ('int8', 'int8', 1)
    >>> ConversionOptions.build(quantization="float16", batch_size=0)
    Traceback (most recent call last):
    ...
    keras_compress.errors.ConversionError: batch_size: expected None (dynamic batch) or an integer >= 1; got 0
"""

from __future__ import annotations

import dataclasses
import enum
import numbers
from collections.abc import Sequence
from typing import Any

from keras_compress.errors import CalibrationDataError, ConversionError

__all__ = ["ConversionOptions", "Quantization", "Target", "parse_runtime"]


class Quantization(str, enum.Enum):
    """TFLite conversion modes."""

    FLOAT32 = "float32"  # no quantization
    FLOAT16 = "float16"  # float16 weights, float compute on CPU
    DYNAMIC = "dynamic"  # int8 weights, float activations (dynamic range)
    INT8 = "int8"  # full integer: int8 weights and activations, int8/uint8 I/O
    INT16X8 = "int16x8"  # int16 activations, int8 weights (not for the Edge TPU)
    INT4_WEIGHTS = "int4_weights"  # 4-bit weights, float activations (AI Edge Quantizer; CPU only)
    INT4_INT8 = "int4_int8"  # 4-bit weights, int8 activations (AI Edge Quantizer, calibrated; CPU only)

    @classmethod
    def get(cls, value: str | Quantization) -> Quantization:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ConversionError(f"quantization: expected one of {allowed}, got {value!r}") from None

    @property
    def calibrated(self) -> bool:
        """True for the modes whose activation ranges come from calibration data (or QAT)."""
        return self in (Quantization.INT8, Quantization.INT16X8, Quantization.INT4_INT8)

    @property
    def lowbit(self) -> bool:
        """True for the 4-bit modes (a float32 conversion, then AI Edge Quantizer on the flatbuffer)."""
        return self in (Quantization.INT4_WEIGHTS, Quantization.INT4_INT8)


class Target(str, enum.Enum):
    """Where the model will run."""

    CPU = "cpu"
    EDGETPU = "edgetpu"

    @classmethod
    def get(cls, value: str | Target | None) -> Target:
        if value is None:
            return cls.CPU
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ConversionError(f"target: expected None or one of {allowed}, got {value!r}") from None


_IO_TYPES = {
    Quantization.FLOAT32: ("float32",),
    Quantization.FLOAT16: ("float32",),
    Quantization.DYNAMIC: ("float32",),
    Quantization.INT8: ("int8", "uint8", "float32"),
    Quantization.INT16X8: ("int16", "float32"),
    Quantization.INT4_WEIGHTS: ("float32",),
    Quantization.INT4_INT8: ("int8",),  # AEQ quantizes the model inputs and outputs too
}


def _io_type(name: str, value: Any, mode: Quantization) -> str:
    allowed = _IO_TYPES[mode]
    if value is None:
        return allowed[0]
    value = str(getattr(value, "name", value))  # tf.int8 / np.dtype -> "int8"
    if value not in allowed:
        raise ConversionError(f"{name}: mode {mode.value!r} allows {', '.join(allowed)}; got {value!r}")
    return value


def parse_runtime(value: str) -> tuple[int, int, int]:
    """``"2.14"`` -> ``(2, 14, 0)``; a TF Lite runtime release as a comparable tuple.

    Raises:
        ConversionError: not a ``MAJOR.MINOR[.PATCH]`` version.
    """
    parts = str(value).strip().split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ConversionError(f"min_runtime: expected a TF Lite runtime release such as '2.14'; got {value!r}")
    nums = [int(p) for p in parts] + [0] * (3 - len(parts))
    return nums[0], nums[1], nums[2]


def _batch_size(value: Any) -> int | None:
    ok = value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1)
    if not ok:
        raise ConversionError(f"batch_size: expected None (dynamic batch) or an integer >= 1; got {value!r}")
    return None if value is None else int(value)


def _int8_layers(value: Any, mode: Quantization) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not mode.lowbit:
        raise ConversionError(f"int8_layers: only for quantization='int4_weights' or 'int4_int8'; got {mode.value!r}")
    if isinstance(value, str) or not all(isinstance(n, str) for n in value):
        raise ConversionError(f"int8_layers: expected a list of Keras layer names; got {value!r}")
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class ConversionOptions:
    """The checked settings of one :func:`~keras_compress.convert.to_tflite` call."""

    mode: Quantization = Quantization.INT8
    target: Target = Target.CPU
    input_type: str = "int8"
    output_type: str = "int8"
    per_channel: bool = True
    batch_size: int | None = 1
    num_calibration_samples: int = 100
    min_runtime: str | None = None
    float_layers: tuple[str, ...] | bool = ()
    verbose: bool = True
    int8_layers: tuple[str, ...] | None = None

    @classmethod
    def build(
        cls,
        *,
        quantization: str | Quantization = "int8",
        target: str | Target | None = None,
        input_type: Any = None,
        output_type: Any = None,
        per_channel: bool = True,
        batch_size: Any = 1,
        num_calibration_samples: int = 100,
        min_runtime: str | None = None,
        float_layers: Sequence[str] | bool = (),
        verbose: bool = True,
        int8_layers: Sequence[str] | None = None,
    ) -> ConversionOptions:
        """Check every argument and return the options (raises :class:`ConversionError`)."""
        mode, tgt = Quantization.get(quantization), Target.get(target)
        batch = _batch_size(batch_size)
        if tgt is Target.EDGETPU and mode is not Quantization.INT8:
            raise ConversionError(
                f"target='edgetpu' needs quantization='int8' (the Edge TPU runs only 8-bit integer ops); got {mode.value!r}"
            )
        if tgt is Target.EDGETPU and batch != 1:
            raise ConversionError(
                f"target='edgetpu' needs a static batch of 1 (the compiler rejects dynamic shapes); got batch_size={batch_size!r}"
            )
        if not isinstance(num_calibration_samples, numbers.Integral) or num_calibration_samples < 1:
            raise CalibrationDataError(f"num_calibration_samples: expected an integer >= 1; got {num_calibration_samples!r}")
        if min_runtime is not None:
            parse_runtime(min_runtime)
            if mode.lowbit:
                raise ConversionError(
                    f"min_runtime: cannot be checked for quantization={mode.value!r}: AI Edge Quantizer writes op "
                    "version 1 for every op (measured: tflite-runtime 2.14 does not run these models)")
        layers = float_layers if isinstance(float_layers, bool) else tuple(str(n) for n in float_layers)
        return cls(mode, tgt, _io_type("input_type", input_type, mode), _io_type("output_type", output_type, mode),
                   bool(per_channel), batch, int(num_calibration_samples),
                   None if min_runtime is None else str(min_runtime), layers, bool(verbose),
                   _int8_layers(int8_layers, mode))

    def to_dict(self) -> dict:
        """JSON-ready form (what the isolated converter process receives)."""
        d = dataclasses.asdict(self)
        d["mode"], d["target"] = self.mode.value, self.target.value
        d["float_layers"] = self.float_layers if isinstance(self.float_layers, bool) else list(self.float_layers)
        d["int8_layers"] = None if self.int8_layers is None else list(self.int8_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ConversionOptions:
        fl = d["float_layers"]
        return cls(**{**d, "mode": Quantization(d["mode"]), "target": Target(d["target"]),
                      "float_layers": fl if isinstance(fl, bool) else tuple(fl),
                      "int8_layers": None if d.get("int8_layers") is None else tuple(d["int8_layers"])})
