"""``convert``: a Keras model to a .tflite file in one mode (``to_tflite``), written into the run folder.

A recipe does not list ``convert`` in a chain: each of a variant's
``outputs`` (default: the recipe's ``convert.modes``) runs ``convert`` then
``measure``. Calibration data (the first ``calibration_samples`` training
images) is given where the mode needs it: int8 of a model that is not
quantization-aware, or that left layers in float (``meta["float_layers"]``),
int16x8 and int4_int8 (AI Edge Quantizer calibrates). A QAT model converts to
int8 from its trained ranges, or (trained with ``weight_bits: 4``) to
int4_weights / int4_int8 with its trained 4-bit weights.

Example:
    >>> from keras_compress.pipeline.spec import build_spec
    >>> build_spec(ConvertSpec, {"mode": "float32", "target": "edgetpu"}, "convert")
    Traceback (most recent call last):
    ...
    keras_compress.errors.ConfigError: convert.mode: target 'edgetpu' allows only 'int8'; got 'float32'
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_compress.errors import ConfigError
from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import choice, file_name, integer, optional, setting

__all__ = ["ConvertSpec", "run", "STAGE", "MODES", "TARGETS", "IO_TYPES", "tflite_file"]

MODES = ("float32", "float16", "dynamic", "int8", "int16x8", "int4_weights", "int4_int8")
#: Modes a quantization-aware model converts to (its trained weights kept; int4: see quantization.lowbit).
QAT_MODES = ("int8", "int4_weights", "int4_int8")
TARGETS = ("cpu", "edgetpu")
IO_TYPES = ("int8", "uint8", "float32")


@dataclass(frozen=True, kw_only=True)
class ConvertSpec:
    """Mode, row name (default: the variant's), target, calibration size, int8 I/O type."""

    mode: str = setting(choice(MODES), "int8")
    name: str | None = setting(optional(file_name), None)
    target: str = setting(choice(TARGETS), "cpu")
    calibration_samples: int = setting(integer(1, 100_000), 200)
    input_type: str | None = setting(choice(IO_TYPES, allow_none=True), None)

    def check(self, where: str) -> None:
        """Consistency of the fields (called by :func:`~keras_compress.pipeline.spec.build_spec`)."""
        if self.target == "edgetpu" and self.mode != "int8":
            raise ConfigError(f"{where}.mode: target 'edgetpu' allows only 'int8'; got {self.mode!r}")


def tflite_file(variant: str, spec: ConvertSpec) -> tuple[str, str]:
    """``(row name, file relative to the run folder)`` of ``variant`` converted as ``spec`` says."""
    if spec.name:
        return spec.name, f"tflite/{spec.name}.tflite"
    return variant, f"tflite/{variant}_{spec.mode}.tflite"


def run(spec: ConvertSpec, artifact: Artifact, ctx) -> Artifact:
    from keras_compress.convert import is_qat_model, to_tflite

    model = artifact.model
    qat = is_qat_model(model)
    if qat and spec.mode not in QAT_MODES:
        raise ConfigError(f"{artifact.name}: a quantization-aware model converts to 'int8' only (or "
                          f"{' / '.join(map(repr, QAT_MODES[1:]))} when trained with weight_bits: 4); got mode {spec.mode!r}")
    row, rel = tflite_file(artifact.name, spec)
    calibrate = spec.mode in ("int16x8", "int4_int8") or (spec.mode == "int8" and (not qat or bool(artifact.meta.get("float_layers"))))
    ctx.say(f"[convert] {row}: {artifact.name} -> {spec.mode}" + (f" for {spec.target}" if spec.target != "cpu" else ""))
    blob = to_tflite(
        model,
        ctx.folder.file(rel),
        quantization=spec.mode,
        representative_data=ctx.x_train[: spec.calibration_samples] if calibrate else None,
        num_calibration_samples=spec.calibration_samples,
        input_type=spec.input_type if spec.mode == "int8" else None,
        target=spec.target if spec.target != "cpu" else None,
        verbose=False,
    )
    ctx.folder.record(rel)
    return artifact.evolve(blob, name=row, stage="convert", variant=artifact.name, mode=spec.mode, file=rel)


STAGE = Stage("convert", ConvertSpec, run, takes="keras", gives="tflite")
