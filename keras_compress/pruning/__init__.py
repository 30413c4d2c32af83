"""Magnitude pruning for Keras 3 in ``model.fit``, with tfmot's names.

Moving from tfmot is a change of import::

    from keras_compress import pruning as sparsity   # was tfmot.sparsity.keras

    model = sparsity.prune_low_magnitude(
        model, pruning_schedule=sparsity.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000))
    model.compile(...)
    model.fit(x, y, callbacks=[sparsity.UpdatePruningStep(), sparsity.PruningSummaries("logs")])
    model = sparsity.strip_pruning(model)
    sparsity.sparsity_report(model)

Zeros scattered through a kernel shrink the compressed file but make neither
the Edge TPU nor XNNPACK's int8 kernels faster: for latency remove whole
filters with :func:`prune_filters`, which returns a physically smaller model.

Modules: ``schedules`` (ConstantSparsity, PolynomialDecay), ``masks`` (mask
math), ``registry`` (which weights of which layer; PrunableLayer), ``wrapper``
(PruneLowMagnitude), ``callbacks``, ``prune`` (prune_low_magnitude,
prune_scope), ``modelcopy``, ``strip``, ``report``, ``structured``
(prune_filters), ``recipes`` (prune and fine-tune in one call).
"""

from keras_compress.pruning.callbacks import PruningSummaries, UpdatePruningStep
from keras_compress.pruning.masks import m_by_n_mask, magnitude_mask
from keras_compress.pruning.prune import prune_low_magnitude, prune_scope
from keras_compress.pruning.recipes import filter_prune_and_finetune, prune_and_finetune
from keras_compress.pruning.registry import PrunableLayer, get_prunable_weights
from keras_compress.pruning.report import (
    layer_sparsities,
    overall_sparsity,
    sparsity_report,
)
from keras_compress.pruning.schedules import (
    ConstantSparsity,
    PolynomialDecay,
    PruningSchedule,
)
from keras_compress.pruning.strip import strip_pruning
from keras_compress.pruning.structured import filter_importance, prune_filters
from keras_compress.pruning.wrapper import (
    PruneLowMagnitude,
    collect_prunable_layers,
    collect_wrappers,
    is_prunable,
)

__all__ = [
    "ConstantSparsity",
    "PolynomialDecay",
    "PrunableLayer",
    "PruneLowMagnitude",
    "PruningSchedule",
    "PruningSummaries",
    "UpdatePruningStep",
    "collect_prunable_layers",
    "collect_wrappers",
    "filter_importance",
    "filter_prune_and_finetune",
    "get_prunable_weights",
    "is_prunable",
    "layer_sparsities",
    "m_by_n_mask",
    "magnitude_mask",
    "overall_sparsity",
    "prune_and_finetune",
    "prune_filters",
    "prune_low_magnitude",
    "prune_scope",
    "sparsity_report",
    "strip_pruning",
]
