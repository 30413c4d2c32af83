"""``build``: the source of a chain: a model from a builder (``cnn``, ``mobilenet_v2``) or a saved ``.keras`` file.

Recipe form::

    - build: {model: cnn, width: 0.5}          # or {model: path/to/model.keras}

Example:
    >>> from keras_compress.pipeline.spec import build_spec
    >>> build_spec(BuildSpec, {"model": "cnn", "width": 0.25}, "build")
    BuildSpec(model='cnn', width=0.25, dropout=0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_compress.errors import ConfigError
from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import choices_text, number, setting
from keras_compress.recipes.builders import BUILDERS, build_model

__all__ = ["BuildSpec", "run", "STAGE"]


def model_ref(where: str, v) -> str:
    """A builder name or a path ending in ``.keras``."""
    if isinstance(v, str) and (v in BUILDERS or v.endswith(".keras")):
        return v
    raise ConfigError(f"{where}: expected one of {choices_text(BUILDERS)} or a path to a .keras file; got {v!r}")


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    """A builder name and its width multiplier and dropout, or a ``.keras`` path (width and dropout unused)."""

    model: str = setting(model_ref, "cnn")
    width: float = setting(number(0.0, 8.0, lo_open=True), 1.0)
    dropout: float = setting(number(0.0, 1.0, hi_open=True), 0.0)


def run(spec: BuildSpec, artifact: Artifact, ctx) -> Artifact:
    """Build (untrained) or load the model; named after the variant."""
    ref = ctx.resolve(spec.model) if spec.model.endswith(".keras") else spec.model
    model = build_model(ref, ctx.input_shape, ctx.num_classes, width=spec.width, dropout=spec.dropout, name=artifact.name)
    what = f"{spec.model} x{spec.width}" + (f", dropout {spec.dropout}" if spec.dropout else "")
    ctx.say(f"[build] {artifact.name}: {what}, {model.count_params():,} parameters")
    return artifact.evolve(model, stage="build")


STAGE = Stage("build", BuildSpec, run, takes="none", gives="keras")
