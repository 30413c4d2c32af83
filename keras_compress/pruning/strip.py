"""`strip_pruning`: back to a plain Keras model, with the zeros in its weights."""

from __future__ import annotations

import warnings

import keras

from keras_compress.errors import PruningError
from keras_compress.pruning import modelcopy
from keras_compress.pruning.wrapper import PruneLowMagnitude, collect_wrappers

__all__ = ["strip_pruning"]


def strip_pruning(model):
    """Removes the pruning wrappers and returns a plain Keras model.

    Each :class:`PruneLowMagnitude` is replaced by (a copy of) the layer it
    wraps, whose pruned weights are exact zeros (``weight * mask``). The
    returned model has its own weights (unless a custom layer cannot be
    rebuilt from its config: it then shares the pruned model's layers, as in
    tfmot, with a warning); it needs no custom object to load and converts to
    TFLite like the original model. A model that was never built is stripped
    too. Call it after training, before export or conversion.

    Args:
        model: A model from :func:`prune_low_magnitude` (or a single wrapper
            layer, for which the wrapped layer is returned).

    Returns:
        A ``keras.Model`` (or layer) without pruning wrappers.

    Example:
        >>> import keras
        >>> from keras_compress.pruning import prune_low_magnitude, strip_pruning
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> [type(l).__name__ for l in strip_pruning(prune_low_magnitude(model)).layers]
        ['Dense']
    """
    if isinstance(model, PruneLowMagnitude):
        model.apply_masks()
        return model.layer
    if not isinstance(model, keras.Model):
        raise PruningError(
            f"strip_pruning needs a keras.Model or a PruneLowMagnitude layer, got "
            f"{type(model).__name__}"
        )
    for wrapper in collect_wrappers(model):
        wrapper.apply_masks()

    def unwrap(layer):
        return layer.layer if isinstance(layer, PruneLowMagnitude) else layer

    shared = modelcopy.clone(model, unwrap, compiled=True)
    blocker = modelcopy.first_unrebuildable(shared)
    if blocker is not None:
        warnings.warn(
            f"strip_pruning: layer '{blocker[0].name}' ({type(blocker[0]).__name__}) cannot be "
            "rebuilt from its config, so the stripped model shares its layers (and weights) "
            "with the pruned model, as in tfmot",
            stacklevel=2,
        )
        return shared
    # `shared` reuses the wrapped layers' objects; copy it so that training the
    # stripped model cannot change the pruned one (and the other way round).
    return modelcopy.copy_model(shared, compiled=True)
