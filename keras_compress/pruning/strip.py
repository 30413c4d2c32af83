"""`strip_pruning`: back to a plain Keras model, with the zeros in its weights."""

from __future__ import annotations

import keras

from keras_compress.errors import PruningError
from keras_compress.pruning.wrapper import PruneLowMagnitude, collect_wrappers

__all__ = ["strip_pruning"]


def strip_pruning(model):
    """Removes the pruning wrappers and returns a plain Keras model.

    Each :class:`PruneLowMagnitude` is replaced by (a copy of) the layer it
    wraps, whose pruned weights are exact zeros (``weight * mask``). The
    returned model has its own weights; it needs no custom object to load
    and converts to TFLite like the original model. Call it after training,
    before export or conversion.

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

    shared = keras.models.clone_model(model, clone_function=unwrap, recursive=True)
    # `shared` reuses the wrapped layers' objects; copy it so that training the
    # stripped model cannot change the pruned one (and the other way round).
    stripped = keras.models.clone_model(shared, recursive=True)
    stripped.set_weights(shared.get_weights())
    return stripped
