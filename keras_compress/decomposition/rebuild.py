"""Rebuild a Sequential / Functional model with some layers replaced by chains of new layers.

:func:`replace_layers` copies a model layer by layer (fresh layers from each
layer's config, weights copied), and where ``replace(layer, path)`` returns a
chain ``[(new_layer, weights), ...]`` it puts those layers, applied one after
the other, in the place of the old one. Nested Sequential / Functional models
are rebuilt the same way. The original model is left untouched and shares no
variable with the copy. Functional models go through Keras's public
``keras.models.clone_model(..., call_function=...)``; Sequential models are
re-listed.

Example:
    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc")])
    >>> def split(layer, path):
    ...     if layer.name != "fc":
    ...         return None
    ...     return [(keras.layers.Dense(3, name="fc_a"), None), (keras.layers.ReLU(name="fc_relu"), None)]
    >>> [l.name for l in replace_layers(m, split).layers]
    ['fc_a', 'fc_relu']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras

from keras_compress.errors import DecompositionError

__all__ = ["Chain", "replace_layers"]

#: What ``replace`` returns for a layer it replaces: new layers with their weights
#: (``None`` keeps the layer's initial weights).
Chain = Sequence[tuple[keras.layers.Layer, list | None]]
Replace = Callable[[keras.layers.Layer, str], Chain | None]


def _copy(layer):
    return layer.__class__.from_config(layer.get_config())


def _apply(chain: Chain, x, set_weights: bool):
    for new_layer, weights in chain:
        x = new_layer(x)
        if set_weights and weights is not None:
            new_layer.set_weights(weights)
    return x


def _rebuild_sequential(model, replace: Replace, prefix: str):
    if not model.built or not model.inputs:
        raise DecompositionError(f"model '{model.name}' is not built; give it an Input or call build() first")
    layers, weights = [], []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.append(replace_layers(layer, replace, prefix=f"{prefix}{layer.name}/"))
            continue
        chain = replace(layer, prefix + layer.name)
        if chain is None:
            chain = [(_copy(layer), layer.get_weights())]
        layers += [new for new, _ in chain]
        weights += [(new, w) for new, w in chain if w is not None]
    x = model.inputs[0]
    inputs = keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name)
    new_model = keras.Sequential([inputs, *layers], name=model.name, trainable=model.trainable)
    for new, w in weights:
        new.set_weights(w)
    return new_model


def _rebuild_functional(model, replace: Replace, prefix: str):
    chains: dict[int, Chain] = {}
    pending: dict[int, list] = {}  # id(copy) -> weights to set once the copy is built
    called: set[int] = set()

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            return replace_layers(layer, replace, prefix=f"{prefix}{layer.name}/")
        chain = replace(layer, prefix + layer.name)
        if chain is not None:
            chains[id(layer)] = chain
            return layer  # a marker: call_function applies the chain instead
        new = _copy(layer)
        pending[id(new)] = layer.get_weights()
        return new

    def call_function(layer, *args, **kwargs):
        if id(layer) in chains:
            first = id(layer) not in called
            called.add(id(layer))
            return _apply(chains[id(layer)], args[0], set_weights=first)
        out = layer(*args, **kwargs)
        weights = pending.pop(id(layer), None)
        if weights is not None:
            layer.set_weights(weights)
        return out

    inputs = [_input_like(model, x) for x in model.inputs]
    return keras.models.clone_model(
        model, input_tensors=keras.tree.pack_sequence_as(model.input, inputs),
        clone_function=clone_function, call_function=call_function,
    )


def _input_like(model, tensor):
    """A new Input like ``tensor``, named like its InputLayer (clone_model would name it after the tensor)."""
    name = next((l.name for l in model.layers if isinstance(l, keras.layers.InputLayer) and l.output is tensor),
                tensor.name)
    return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=name)


def replace_layers(model, replace: Replace, *, prefix: str = ""):
    """A copy of ``model`` with the layers ``replace`` picks swapped for chains of new layers.

    Args:
        model: a built Sequential or Functional model (nested ones allowed).
        replace: ``replace(layer, path) -> chain or None``; ``path`` is
            ``outer/inner`` inside nested models. A chain is a list of
            ``(new_layer, weights)``; the new layers are called one after the
            other on the replaced layer's input, then get ``weights``.
        prefix: path of ``model`` inside an outer model (used when recursing).

    Returns:
        A new model of the same kind with copied weights (compiled like the
        original if the original was compiled, as ``clone_model`` does).

    Raises:
        DecompositionError: ``model`` is subclassed or not built.
    """
    if isinstance(model, keras.Sequential):
        new_model = _rebuild_sequential(model, replace, prefix)
        if model.compiled:
            new_model.compile_from_config(model.get_compile_config())
        return new_model
    try:
        wired = bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):  # a subclassed model has no symbolic inputs
        wired = False
    try:
        if wired:
            return _rebuild_functional(model, replace, prefix)
    except DecompositionError:
        raise
    except ValueError as e:  # clone_model refuses models it cannot clone
        raise DecompositionError(f"model '{model.name}' ({type(model).__name__}) cannot be rebuilt: {e}") from None
    raise DecompositionError(
        f"model '{model.name}' ({type(model).__name__}) cannot be rebuilt: only Sequential and "
        "Functional models can (a subclassed model's wiring is not known)"
    )
