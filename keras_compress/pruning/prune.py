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

import warnings

import keras

from keras_compress.errors import PruningError
from keras_compress.pruning import modelcopy
from keras_compress.pruning import registry as _registry
from keras_compress.pruning.schedules import ConstantSparsity, PolynomialDecay
from keras_compress.pruning.wrapper import PruneLowMagnitude, is_prunable

__all__ = ["prune_low_magnitude", "prune_scope"]

_INVALID_TO_PRUNE = (
    "`prune_low_magnitude` can only prune an object of the following types: keras.Sequential, "
    "keras functional model, keras.layers.Layer, list of keras.layers.Layer. You passed an "
    "object of type: {input}."
)


def prune_low_magnitude(
    to_prune,
    pruning_schedule=None,
    block_size=(1, 1),
    block_pooling_type="AVG",
    sparsity_m_by_n=None,
    **kwargs,
):
    """Wraps a model, a layer or a list of layers for magnitude pruning.

    A layer or list of layers is wrapped as given (the wrapper holds the very
    layer object), as in tfmot. A model (Sequential or Functional, nested ones
    included) is copied: the returned model has its own weights (copied from
    ``to_prune``) and no optimizer (``compile`` it), with every prunable layer
    (see :mod:`keras_compress.pruning.registry`) wrapped in
    :class:`PruneLowMagnitude` and all other layers unchanged. If a custom
    layer cannot be rebuilt from its config, the model's own layers are
    wrapped instead (tfmot's behaviour, with a warning: training the pruned
    model then changes ``to_prune``'s weights too). Layers already wrapped
    are kept, so you can wrap some layers yourself (with their own schedule)
    and then pass the model. Train with :class:`UpdatePruningStep`, then call
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
        **kwargs: Passed on to each :class:`PruneLowMagnitude`
            (``prune_depthwise=True`` also prunes DepthwiseConv kernels,
            ``input_shape`` for a first Sequential layer).

    Returns:
        The wrapped model, layer or list of layers.

    Raises:
        PruningError: (a ``ValueError``) a layer cannot be pruned (a custom layer
            without ``get_prunable_weights()``, a subclass of a built-in layer, a
            built-in layer with unknown weights), a model is subclassed, or an
            argument is invalid; the message names the layer or value.

    Example:
        >>> layer = prune_low_magnitude(keras.layers.Dense(3, name="fc"))
        >>> type(layer).__name__, layer.name
        ('PruneLowMagnitude', 'prune_low_magnitude_fc')
    """
    params = dict(
        pruning_schedule=pruning_schedule if pruning_schedule is not None else ConstantSparsity(0.5, 0),
        block_size=block_size,
        block_pooling_type=block_pooling_type,
        sparsity_m_by_n=sparsity_m_by_n,
        **kwargs,
    )
    if isinstance(to_prune, (list, tuple)):
        bad = [l for l in to_prune if not isinstance(l, keras.layers.Layer)]
        if bad:
            raise PruningError(_INVALID_TO_PRUNE.format(input=type(bad[0]).__name__))
        return [_wrap(l, params) for l in to_prune]
    if isinstance(to_prune, keras.Model):
        if not (isinstance(to_prune, keras.Sequential) or modelcopy.is_functional(to_prune)):
            raise PruningError(_INVALID_TO_PRUNE.format(input=type(to_prune).__name__))
        return _prune_model(to_prune, params)
    if isinstance(to_prune, keras.layers.Layer):
        return _wrap(to_prune, params)
    raise PruningError(_INVALID_TO_PRUNE.format(input=type(to_prune).__name__))


def _wrap(layer, params):
    return layer if isinstance(layer, PruneLowMagnitude) else PruneLowMagnitude(layer, **params)


def _check_layers(model, prune_depthwise: bool) -> None:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _check_layers(layer, prune_depthwise)
        elif not isinstance(layer, (PruneLowMagnitude, keras.layers.InputLayer)):
            verdict = _registry.support(layer, prune_depthwise)
            if verdict.kind == "unsupported":
                raise PruningError(_registry.unsupported_message(layer, verdict.reason))


def _prune_model(model, params):
    modelcopy.check_cloneable(model)
    # Validate the arguments once (and fail before copying) with a probe layer.
    probe = {k: v for k, v in params.items() if k not in ("name", "input_shape", "input_dim")}
    PruneLowMagnitude(keras.layers.Dense(1), **probe)
    prune_depthwise = bool(params.get("prune_depthwise", False))
    _check_layers(model, prune_depthwise)
    blocker = modelcopy.first_unrebuildable(model)
    if blocker is None:
        source = modelcopy.copy_model(model)
    else:
        layer, error = blocker
        warnings.warn(
            f"prune_low_magnitude: layer '{layer.name}' ({type(layer).__name__}) cannot be "
            f"rebuilt from its config ({type(error).__name__}: {error}), so model "
            f"'{model.name}' cannot be copied: its own layers are wrapped (as tfmot does) and "
            "training the pruned model changes its weights too. For an independent copy, give "
            f"{type(layer).__name__}.__init__ a **kwargs passed to super().__init__() and a "
            "get_config() returning its other arguments.",
            stacklevel=3,
        )
        source = model

    def clone_fn(layer):
        return _wrap(layer, params) if is_prunable(layer, prune_depthwise) else layer

    return modelcopy.clone(source, clone_fn)


def prune_scope():
    """tfmot's ``prune_scope``: the custom objects of a pruned model, as a scope.

    Not needed to load models saved by keras_compress (its classes are
    registered); kept so that tfmot code runs unchanged, and for configs that
    name the classes without their package.

    Example:
        >>> with prune_scope():
        ...     pass
    """
    return keras.saving.custom_object_scope(
        {
            "PruneLowMagnitude": PruneLowMagnitude,
            "ConstantSparsity": ConstantSparsity,
            "PolynomialDecay": PolynomialDecay,
        }
    )
