"""The pruning ramp, per-layer pruning, and prune-and-fine-tune in one call.

One ramp everywhere (the pipeline's ``prune`` stage, :func:`prune_and_finetune`,
the demo): sparsity rises along ``PolynomialDecay`` from the initial to the
target sparsity over the first **70%** of the fine-tuning steps, masks updated
10 times on the way (or every ``frequency`` steps), then stays fixed while
training continues, so the last 30% of the steps recover accuracy at the final
masks. (The recipe pipeline ended its ramp at two thirds, the demo at 70%;
70% is kept: the demo's and bench_pruning's published figures use it.)

Example:
    >>> from keras_compress.pruning.recipes import pruning_ramp
    >>> s = pruning_ramp(steps=100, final_sparsity=0.8)
    >>> s.end_step, s.frequency
    (70, 7)
    >>> sparse = prune_and_finetune(baseline, x_train, y_train, sparsity=0.8)   # doctest: +SKIP
    >>> small = filter_prune_and_finetune(baseline, x_train, y_train, fraction=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Mapping

import keras

from keras_compress.errors import PruningError
from keras_compress.pruning.callbacks import UpdatePruningStep
from keras_compress.pruning.prune import prune_low_magnitude
from keras_compress.pruning.schedules import ConstantSparsity, PolynomialDecay
from keras_compress.pruning.strip import strip_pruning
from keras_compress.pruning.structured import prune_filters
from keras_compress.pruning.wrapper import is_prunable

__all__ = [
    "RAMP_FRACTION",
    "pruning_ramp",
    "prune_layers",
    "prunable_layer_names",
    "prune_and_finetune",
    "filter_prune_and_finetune",
    "conv_layer_names",
]

#: Fraction of the fine-tuning steps over which sparsity ramps up.
RAMP_FRACTION = 0.7


def pruning_ramp(steps: int, final_sparsity: float, initial_sparsity: float = 0.0, frequency: int | None = None,
                 schedule: str = "polynomial"):
    """The schedule of a ``steps``-step fine-tuning: the ramp above, or the target from step 0 (``"constant"``).

    Args:
        steps: fine-tuning steps (epochs x batches per epoch).
        final_sparsity, initial_sparsity: ends of the ramp.
        frequency: steps between mask updates; default: 10 updates over the ramp.
        schedule: ``"polynomial"`` (the ramp) or ``"constant"``.
    """
    ramp = int(RAMP_FRACTION * steps)
    frequency = frequency or max(1, ramp // 10)
    if schedule == "constant":
        return ConstantSparsity(final_sparsity, begin_step=0, frequency=frequency)
    if schedule != "polynomial":
        raise PruningError(f"schedule: expected 'polynomial' or 'constant', got {schedule!r}")
    end_step = max(frequency, ramp // frequency * frequency)
    return PolynomialDecay(initial_sparsity, final_sparsity, begin_step=0, end_step=end_step, frequency=frequency)


def prunable_layer_names(model) -> list[str]:
    """Names of the layers :func:`prune_low_magnitude` would wrap (nested models included)."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            names += prunable_layer_names(layer)
        elif is_prunable(layer):
            names.append(layer.name)
    return names


def prune_layers(model, sparsities: Mapping[str, float], steps: int, *, initial_sparsity: float = 0.0,
                 frequency: int | None = None, schedule: str = "polynomial"):
    """A copy of ``model`` with each named layer wrapped for pruning to its own target, on the one ramp.

    Args:
        model: a trained Sequential / Functional model (not modified).
        sparsities: ``{layer name: final sparsity}``; other layers stay unwrapped.
        steps, initial_sparsity, frequency, schedule: see :func:`pruning_ramp`.

    Returns:
        The wrapped model; train it with :class:`UpdatePruningStep`, then :func:`strip_pruning`.
    """
    unknown = sorted(set(sparsities) - set(prunable_layer_names(model)))
    if unknown:
        raise PruningError(f"model {model.name!r}: no prunable layer named {', '.join(map(repr, unknown))}")

    def schedule_for(target):
        return pruning_ramp(steps, target, min(initial_sparsity, target), frequency, schedule)

    copy = keras.models.clone_model(model, recursive=True)
    copy.set_weights(model.get_weights())

    def wrap(layer):
        if layer.name in sparsities and is_prunable(layer):
            return prune_low_magnitude(layer, schedule_for(sparsities[layer.name]))
        return layer

    return keras.models.clone_model(copy, clone_function=wrap, recursive=True)


def _compile(model, baseline, loss, learning_rate, metrics):
    if loss is None:
        loss = getattr(baseline, "loss", None) or keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=list(metrics))
    return model


def prune_and_finetune(model, x, y, *, sparsity=0.8, epochs=10, batch_size=32, learning_rate=1e-3, loss=None,
                       metrics=("accuracy",), validation_data=None, verbose=0):
    """Magnitude-prunes a trained model to ``sparsity`` while fine-tuning it (the ramp above).

    The input model is not modified. Seeding the batch order is the caller's job.

    Args:
        model: A trained Sequential / Functional Keras model.
        x, y: Training data for the fine-tuning.
        sparsity: Final fraction of zeros in every pruned kernel.
        epochs, batch_size, learning_rate: Fine-tuning settings (Adam).
        loss: Defaults to the model's compiled loss, else sparse categorical
            cross-entropy on probabilities.
        metrics, validation_data, verbose: As in ``model.fit``.

    Returns:
        The stripped (plain Keras), compiled model with the zeros in its weights.
    """
    steps = epochs * math.ceil(len(x) / batch_size)
    pruned = _compile(prune_low_magnitude(model, pruning_ramp(steps, sparsity)), model, loss, learning_rate, metrics)
    pruned.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
               callbacks=[UpdatePruningStep()], verbose=verbose)
    return _compile(strip_pruning(pruned), model, loss, learning_rate, metrics)


def conv_layer_names(model) -> list:
    """Names of the Conv1D/Conv2D/SeparableConv layers of a flat model (what filter pruning shrinks)."""
    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)]


def filter_prune_and_finetune(model, x, y, *, fraction=0.5, layers=None, epochs=10, batch_size=32, learning_rate=1e-3,
                              loss=None, metrics=("accuracy",), validation_data=None, verbose=0):
    """Removes ``fraction`` of the filters of the conv layers, then fine-tunes.

    Args:
        model: A trained flat Sequential / Functional model.
        x, y: Training data for the fine-tuning.
        fraction: Fraction of filters removed from each layer.
        layers: Layers to shrink; default: every conv layer (see
            :func:`conv_layer_names`). The layers after them shrink to match.
        epochs, batch_size, learning_rate, loss, metrics, validation_data,
            verbose: As in :func:`prune_and_finetune`.

    Returns:
        The smaller, fine-tuned, compiled model.
    """
    layers = conv_layer_names(model) if layers is None else layers
    small = _compile(prune_filters(model, fraction, layers=layers), model, loss, learning_rate, metrics)
    small.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data, verbose=verbose)
    return small
