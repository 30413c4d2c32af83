"""`prune_low_magnitude`: the entry point, with tfmot's signature.

Example:
    >>> import keras
    >>> from keras_compress.pruning import prune_low_magnitude, PolynomialDecay
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="a"),
    ...                           keras.layers.ReLU(name="r"), keras.layers.Dense(2, name="b")])
    >>> pruned = prune_low_magnitude(model, PolynomialDecay(0.0, 0.8, 0, 100, frequency=10))
    >>> [layer.name for layer in pruned.layers]
    ['prune_low_magnitude_a', 'r', 'prune_low_magnitude_b']
"""

from __future__ import annotations

import keras

from keras_compress.errors import PruningError
from keras_compress.pruning.schedules import ConstantSparsity
from keras_compress.pruning.wrapper import PruneLowMagnitude, is_prunable

__all__ = ["prune_low_magnitude"]


def prune_low_magnitude(
    to_prune,
    pruning_schedule=None,
    block_size=(1, 1),
    block_pooling_type="AVG",
    sparsity_m_by_n=None,
    **kwargs,
):
    """Wraps a model, a layer or a list of layers for magnitude pruning.

    Models (Sequential or Functional, nested ones included) are copied: the
    returned model has its own weights (copied from ``to_prune``), with every
    prunable layer (Dense, Conv1D/2D/3D, DepthwiseConv, SeparableConv,
    ConvTranspose, Embedding) wrapped in :class:`PruneLowMagnitude` and all
    other layers unchanged. Layers already wrapped are kept as they are, so
    you can wrap some layers yourself (with their own schedule) and then pass
    the model. Train with :class:`UpdatePruningStep`, then call
    :func:`strip_pruning`.

    Args:
        to_prune: A ``keras.Model`` (Sequential or Functional), a layer, or a
            list of layers.
        pruning_schedule: When and how much to prune; default
            ``ConstantSparsity(0.5, begin_step=0, frequency=100)`` as in tfmot.
        block_size: ``(height, width)`` blocks pruned together (2-D weights only).
        block_pooling_type: ``"AVG"`` or ``"MAX"`` pooling of a block's magnitudes.
        sparsity_m_by_n: e.g. ``(2, 4)``: 2 zeros in every 4 consecutive input
            channels, in place of the schedule's sparsity.
        **kwargs: Passed on to each :class:`PruneLowMagnitude`.

    Returns:
        The wrapped model, layer or list of layers.

    Raises:
        PruningError: a layer given explicitly cannot be pruned, a model is
            subclassed, or an argument is invalid (the message names it).

    Example:
        >>> layer = prune_low_magnitude(keras.layers.Dense(3, name="fc"))
        >>> type(layer).__name__, layer.name
        ('PruneLowMagnitude', 'prune_low_magnitude_fc')
    """
    if pruning_schedule is None:
        pruning_schedule = ConstantSparsity(0.5, 0)
    params = dict(
        pruning_schedule=pruning_schedule,
        block_size=block_size,
        block_pooling_type=block_pooling_type,
        sparsity_m_by_n=sparsity_m_by_n,
        **kwargs,
    )

    def wrap(layer):
        if isinstance(layer, PruneLowMagnitude):
            return layer
        return PruneLowMagnitude(layer, **params)

    if isinstance(to_prune, (list, tuple)):
        bad = [l for l in to_prune if not isinstance(l, keras.layers.Layer)]
        if bad:
            raise PruningError(f"prune_low_magnitude: list items must be layers, got {bad[0]!r}")
        return [wrap(l) for l in to_prune]
    if isinstance(to_prune, keras.Model):
        _check_cloneable(to_prune)
        # Validate the arguments once (and fail before copying) with a probe layer.
        PruneLowMagnitude(keras.layers.Dense(1), **params)
        copy = _copy_model(to_prune)

        def clone_fn(layer):
            return wrap(layer) if is_prunable(layer) else layer

        return keras.models.clone_model(copy, clone_function=clone_fn, recursive=True)
    if isinstance(to_prune, keras.layers.Layer):
        return wrap(to_prune)
    raise PruningError(
        "prune_low_magnitude: to_prune must be a keras.Model (Sequential or Functional), a "
        f"layer or a list of layers, got {type(to_prune).__name__}"
    )


def _check_cloneable(model) -> None:
    """Subclassed models have no layer graph to rebuild; say so by name."""
    if isinstance(model, keras.Sequential):
        inner = model.layers
    elif type(model).__name__ == "Functional" or _is_functional(model):
        inner = model.layers
    else:
        raise PruningError(
            f"model '{model.name}' ({type(model).__name__}) is a subclassed model: "
            "prune_low_magnitude needs a Sequential or Functional model; wrap the layers "
            "inside its __init__ with prune_low_magnitude(layer) instead"
        )
    for layer in inner:
        if isinstance(layer, keras.Model):
            _check_cloneable(layer)


def _is_functional(model) -> bool:
    try:
        model.get_config()["layers"]
        return hasattr(model, "inputs") and model.inputs is not None
    except Exception:
        return False


def _copy_model(model):
    """An independent copy (same architecture and weights) so `model` is not modified."""
    copy = keras.models.clone_model(model, recursive=True)
    copy.set_weights(model.get_weights())
    return copy
