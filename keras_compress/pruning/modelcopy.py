"""Copies of Sequential / Functional models for pruning and stripping.

:func:`prune_low_magnitude` returns a copy (own weights, no optimizer) so that
training the pruned model leaves the original model as it was. A copy is made
from each layer's config; a custom layer that cannot be rebuilt from its
config (an ``__init__`` without ``**kwargs``, an incomplete ``get_config``) is
found first and named, and the caller then wraps the original layers instead,
as tfmot does.

Example:
    >>> import keras
    >>> from keras_compress.pruning.modelcopy import copy_model
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile("adam", "mse")
    >>> copy = copy_model(model)
    >>> copy.compiled, copy.layers[0] is model.layers[0]
    (False, False)
"""

from __future__ import annotations

import contextlib
import random

import keras

from keras_compress.errors import PruningError

__all__ = ["check_cloneable", "clone", "copy_model", "first_unrebuildable", "is_functional"]


def is_functional(model) -> bool:
    """True for a Functional model (a graph of layers), False for subclassed ones."""
    if isinstance(model, keras.Sequential):
        return False
    try:
        config = model.get_config()
    except Exception:  # noqa: BLE001 - a subclassed model's get_config may raise anything
        return False
    return isinstance(config, dict) and "layers" in config and "input_layers" in config


def check_cloneable(model) -> None:
    """Raises PruningError if a nested model is subclassed (it has no layer graph to rebuild)."""
    for layer in model.layers:
        if not isinstance(layer, keras.Model):
            continue
        if not (isinstance(layer, keras.Sequential) or is_functional(layer)):
            raise PruningError(
                f"layer '{layer.name}' of model '{model.name}' is a subclassed model "
                f"({type(layer).__name__}): prune_low_magnitude needs Sequential or Functional "
                "models; wrap the layers inside its __init__ with prune_low_magnitude(layer)"
            )
        check_cloneable(layer)


def _models(model):
    yield model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _models(layer)


@contextlib.contextmanager
def _uncompiled(model):
    # keras.models.clone_model compiles the clone when the source is compiled
    # (Keras 3.15, with a new optimizer of the same class); tfmot's pruned model
    # has no optimizer. There is no public "uncompile", so the sources are
    # marked uncompiled (a public attribute) while they are cloned.
    states = [(m, m.compiled) for m in _models(model)]
    try:
        for m, _ in states:
            m.compiled = False
        yield
    finally:
        for m, compiled in states:
            m.compiled = compiled


def _named_inputs(model):
    # keras.models.clone_model names a Functional clone's inputs after the input
    # tensors ("keras_tensor"), not the input layers; give them the layers' names.
    layers = {id(l.output): l.name for l in model.layers if isinstance(l, keras.layers.InputLayer)}
    return keras.tree.map_structure(
        lambda x: keras.Input(
            batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse, name=layers.get(id(x), x.name)
        ),
        model.input,
    )


def clone(model, clone_function=None, *, compiled: bool = False):
    """``keras.models.clone_model(model, clone_function, recursive=True)``.

    The input layers keep their names; the clone is compiled (as the source)
    only if ``compiled`` is True.
    """
    kwargs = {"input_tensors": _named_inputs(model)} if is_functional(model) else {}
    with contextlib.nullcontext() if compiled else _uncompiled(model):
        return keras.models.clone_model(
            model, clone_function=clone_function, recursive=True, **kwargs
        )


def copy_model(model, *, compiled: bool = False):
    """An independent copy of ``model`` with the same weights (uncompiled by default)."""
    copy = clone(model, compiled=compiled)
    copy.set_weights(model.get_weights())
    return copy


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def first_unrebuildable(model):
    """``(layer, error)`` for the first layer not rebuilt by ``from_config(get_config())``, or None.

    Leaves the global random state as it found it (new layers draw initializer
    seeds from Python's ``random``), so checking does not change what follows.
    """
    state = random.getstate()
    try:
        for layer in _layers(model):
            try:
                type(layer).from_config(layer.get_config())
            except Exception as e:  # noqa: BLE001 - whatever the layer's own code raises
                return layer, e
        return None
    finally:
        random.setstate(state)
