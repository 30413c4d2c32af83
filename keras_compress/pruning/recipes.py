"""Prune and fine-tune in one call: the recipes behind the demo's pruned rows.

Example:
    >>> from keras_compress.pruning.recipes import prune_and_finetune, filter_prune_and_finetune
    >>> sparse = prune_and_finetune(baseline, x_train, y_train, sparsity=0.8)   # doctest: +SKIP
    >>> small = filter_prune_and_finetune(baseline, x_train, y_train, fraction=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import math

import keras

from keras_compress.pruning.callbacks import UpdatePruningStep
from keras_compress.pruning.prune import prune_low_magnitude
from keras_compress.pruning.schedules import PolynomialDecay
from keras_compress.pruning.strip import strip_pruning
from keras_compress.pruning.structured import prune_filters

__all__ = ["prune_and_finetune", "filter_prune_and_finetune", "conv_layer_names"]


def _compile(model, baseline, loss, learning_rate, metrics):
    if loss is None:
        loss = getattr(baseline, "loss", None) or keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    return model


def prune_and_finetune(
    model,
    x,
    y,
    *,
    sparsity=0.8,
    epochs=10,
    batch_size=32,
    learning_rate=1e-3,
    loss=None,
    metrics=("accuracy",),
    validation_data=None,
    verbose=0,
):
    """Magnitude-prunes a trained model to ``sparsity`` while fine-tuning it.

    Sparsity rises along ``PolynomialDecay(0 -> sparsity)`` over the first
    70% of the steps (masks updated 10 times), then the masks stay fixed while
    training continues. The input model is not modified.

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
    frequency = max(1, int(0.7 * steps) // 10)
    end_step = max(frequency, (int(0.7 * steps) // frequency) * frequency)
    schedule = PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end_step, frequency=frequency)
    pruned = _compile(prune_low_magnitude(model, schedule), model, loss, learning_rate, list(metrics))
    pruned.fit(
        x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
        callbacks=[UpdatePruningStep()], verbose=verbose,
    )
    return _compile(strip_pruning(pruned), model, loss, learning_rate, list(metrics))


def conv_layer_names(model) -> list:
    """Names of the Conv1D/Conv2D/SeparableConv layers of a flat model."""
    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.SeparableConv1D,
             keras.layers.SeparableConv2D)
    return [l.name for l in model.layers if isinstance(l, kinds)]


def filter_prune_and_finetune(
    model,
    x,
    y,
    *,
    fraction=0.5,
    layers=None,
    epochs=10,
    batch_size=32,
    learning_rate=1e-3,
    loss=None,
    metrics=("accuracy",),
    validation_data=None,
    verbose=0,
):
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
    small = _compile(prune_filters(model, fraction, layers=layers), model, loss, learning_rate,
                     list(metrics))
    small.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
              verbose=verbose)
    return small
