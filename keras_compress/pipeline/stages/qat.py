"""``qat``: quantization-aware fine-tuning (int8 TFLite scheme); per-layer choice of what stays float.

``quantize`` is ``true`` for every layer or a per-layer map
``{regex: true/false}``; layers mapped to ``false`` stay float (then
conversion needs calibration data, which the pipeline gives). Pruning zeros
are kept when the model came through a ``prune`` stage (``preserve_sparsity``
left to ``null``), or as ``preserve_sparsity`` says; clusters likewise after
a ``cluster`` stage (``preserve_clusters``). With a ``teacher``, the
fine-tuning is distilled.

Recipe form::

    - qat: {epochs: 2, learning_rate: 0.0001}
    - qat: {epochs: 2, quantize: {"^logits$": false}}
    - qat: {epochs: 2, weight_bits: 4}      # then convert with mode int4_weights or int4_int8

Example:
    >>> QATSpec().learning_rate, QATSpec().quantize.uniform
    (0.0001, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import FitSpec, fit
from keras_compress.pipeline.layermap import LayerMap
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import boolean, file_name, integer, number, optional, per_layer, setting

__all__ = ["QATSpec", "run", "STAGE"]


@dataclass(frozen=True, kw_only=True)
class QATSpec(FitSpec):
    """The fine-tuning schedule, which layers to quantize, sparsity preservation, an optional teacher."""

    epochs: int = setting(integer(1, 10_000), 2)
    learning_rate: float = setting(number(0.0, 1.0, lo_open=True), 1e-4)
    quantize: LayerMap = setting(per_layer(boolean), LayerMap.of(True))
    preserve_sparsity: bool | None = setting(optional(boolean), None)
    preserve_clusters: bool | None = setting(optional(boolean), None)
    teacher: str | None = setting(optional(file_name), None)
    weight_bits: int = setting(integer(4, 8), 8)


def run(spec: QATSpec, artifact: Artifact, ctx) -> Artifact:
    from keras_compress.quantization import quantize_model

    model = artifact.model
    names = [layer.name for layer in model.layers]
    spec.quantize.select(names, "qat.quantize", f"layer of {artifact.name!r}")
    float_layers = [n for n in names if spec.quantize.value_for(n, True) is False]
    preserve = "prune" in artifact.stages if spec.preserve_sparsity is None else spec.preserve_sparsity
    notes = [f"{len(float_layers)} layer(s) left in float"] if float_layers else []
    clusters = "cluster" in artifact.stages if spec.preserve_clusters is None else spec.preserve_clusters
    notes += ["zeros preserved"] if preserve else []
    notes += ["clusters preserved"] if clusters else []
    notes += [f"distilled from {spec.teacher}"] if spec.teacher else []
    notes += [f"{spec.weight_bits}-bit weights (first and last kernel layers 8-bit)"] if spec.weight_bits != 8 else []
    ctx.say(f"[qat] {artifact.name}: quantization-aware fine-tuning, {spec.epochs} epochs" + "".join(f", {n}" for n in notes))
    qat = quantize_model(
        model, float_layers=float_layers, preserve_sparsity=preserve, preserve_clusters=clusters, weight_bits=spec.weight_bits
    )
    fit(qat, ctx, spec, label=artifact.name, teacher=spec.teacher)
    return artifact.evolve(qat, stage="qat", float_layers=tuple(float_layers))


STAGE = Stage("qat", QATSpec, run)
