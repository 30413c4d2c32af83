"""Which weights of which layer are pruned: tfmot's prune registry, on Keras 3.

Layers are matched by their exact class, as tfmot does: a subclass of
``Dense`` is not a ``Dense`` here (its ``call`` may use the kernel in another
way). A custom layer opts in by implementing ``get_prunable_weights()``
(:class:`PrunableLayer`), which returns the variables to prune (``[]`` if it
has none).

=====================================  ==========================  ============
layer (exact class)                    pruned weights              m-by-n axis
=====================================  ==========================  ============
Dense                                  kernel                      inputs (0)
Conv1D / Conv2D / Conv3D               kernel                      in-channels
Conv1DTranspose / Conv2D/3DTranspose   kernel                      in-channels
SeparableConv1D / SeparableConv2D      pointwise_kernel only       in-channels
Embedding                              embeddings                  features
LSTM / GRU / SimpleRNN / RNN           kernel, recurrent_kernel    inputs (0)
  (cells LSTMCell, GRUCell,            of every cell
  SimpleRNNCell or a PrunableLayer)
MultiHeadAttention                     query, key, value and       none
                                       output kernels
DepthwiseConv1D / DepthwiseConv2D      none (``prune_depthwise=    none
                                       True``: the kernel)
any layer with get_prunable_weights()  the weights it returns      by rank
=====================================  ==========================  ============

``sparsity_m_by_n`` applies to rank-2 and rank-4 weights (as tfmot); other
weights (Conv1D, Conv3D, MultiHeadAttention kernels) keep a mask of ones.
Depthwise kernels stay dense by default, as in tfmot (MobileNets keep them):
they hold a few percent of the weights and each one is a whole spatial tap
of a channel. Normalization, pooling, reshaping, dropout, activation and
merge layers have nothing to prune. Built-in layers with weights this
registry does not know (``ConvLSTM2D``, ``Bidirectional``, ``EinsumDense``,
...) and custom layers without ``get_prunable_weights()`` are refused with
an error that names them, as tfmot does, rather than silently left dense.

Example:
    >>> import keras
    >>> from keras_compress.pruning.registry import support
    >>> support(keras.layers.Dense(3)).kind, support(keras.layers.Dropout(0.1)).kind
    ('prune', 'none')
    >>> class MyDense(keras.layers.Dense):
    ...     pass
    >>> support(MyDense(3)).kind
    'unsupported'
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import keras

from keras_compress.errors import PruningError

__all__ = [
    "PrunableLayer",
    "Support",
    "attribute_names",
    "get_prunable_weights",
    "m_by_n_axis",
    "support",
    "unsupported_message",
]

_L = keras.layers

_KERNELS = {
    _L.Dense: ("kernel",),
    _L.Conv1D: ("kernel",),
    _L.Conv2D: ("kernel",),
    _L.Conv3D: ("kernel",),
    _L.Conv1DTranspose: ("kernel",),
    _L.Conv2DTranspose: ("kernel",),
    _L.Conv3DTranspose: ("kernel",),
    _L.SeparableConv1D: ("pointwise_kernel",),
    _L.SeparableConv2D: ("pointwise_kernel",),
    _L.Embedding: ("embeddings",),
    _L.MultiHeadAttention: (
        "query_dense.kernel",
        "key_dense.kernel",
        "value_dense.kernel",
        "output_dense.kernel",
    ),
}
_DEPTHWISE = {_L.DepthwiseConv1D: ("kernel",), _L.DepthwiseConv2D: ("kernel",)}
_RNN_LAYERS = (_L.RNN, _L.LSTM, _L.GRU, _L.SimpleRNN)
_RNN_CELLS = (_L.LSTMCell, _L.GRUCell, _L.SimpleRNNCell)
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)

# Built-in layers with weights that pruning does not know how to prune (tfmot refuses them too).
_UNSUPPORTED = tuple(
    getattr(_L, name)
    for name in (
        "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional", "TimeDistributed",
        "EinsumDense", "GroupQueryAttention",
    )
    if hasattr(_L, name)
)
# Built-in layers whose weights are kept dense on purpose (scales, statistics).
_KEEP_DENSE = tuple(
    getattr(_L, name)
    for name in (
        "BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization",
        "UnitNormalization", "Normalization", "SpectralNormalization", "PReLU", "Attention",
        "AdditiveAttention",
    )
    if hasattr(_L, name)
)


class PrunableLayer(abc.ABC):
    """tfmot's interface for custom layers: say which weights to prune.

    Mix it into a custom layer (or just define the method) and
    :func:`~keras_compress.pruning.prune_low_magnitude` prunes exactly the
    variables ``get_prunable_weights()`` returns; return ``[]`` for a layer
    with nothing to prune.

    Example:
        >>> import keras
        >>> from keras_compress.pruning import PrunableLayer, prune_low_magnitude
        >>> class Scaled(keras.layers.Dense, PrunableLayer):
        ...     def get_prunable_weights(self):
        ...         return [self.kernel]
        >>> wrapped = prune_low_magnitude(Scaled(4))
        >>> wrapped.build((None, 3))
        >>> [w.path.split("/")[-1] for w in wrapped.get_prunable_weights()]
        ['kernel']
    """

    @abc.abstractmethod
    def get_prunable_weights(self) -> list:
        """The variables of this layer to prune (``[]`` if none)."""


class Support(NamedTuple):
    """How pruning treats a layer: ``kind`` is ``"prune"``, ``"none"`` or ``"unsupported"``."""

    kind: str
    reason: str = ""


def _custom_interface(layer) -> bool:
    return isinstance(layer, PrunableLayer) or callable(getattr(layer, "get_prunable_weights", None))


def _is_builtin(layer) -> bool:
    return type(layer).__module__.split(".")[0] == "keras"


def support(layer, prune_depthwise: bool = False) -> Support:
    """Says whether ``layer`` is pruned, has nothing to prune, or is refused (and why)."""
    cls = type(layer)
    if not isinstance(layer, keras.layers.Layer):  # a Keras operation node (MobileNetV3's `x + 3.0`): no weights
        return Support("none")
    if _custom_interface(layer):
        return Support("prune")
    if getattr(layer, "lora_enabled", False):
        return Support("unsupported", "LoRA is enabled on it")
    if getattr(layer, "quantization_mode", None):
        return Support("unsupported", f"it is quantized ({layer.quantization_mode})")
    if cls in _KERNELS:
        return Support("prune")
    if cls in _DEPTHWISE:
        return Support("prune" if prune_depthwise else "none")
    if cls in _RNN_LAYERS:
        for cell in _rnn_cells(layer):
            if type(cell) not in _RNN_CELLS and not _custom_interface(cell):
                return Support(
                    "unsupported",
                    f"its cell {type(cell).__name__} is not one of LSTMCell, GRUCell, "
                    "SimpleRNNCell and has no get_prunable_weights()",
                )
        return Support("prune")
    if cls in _UNSUPPORTED:
        return Support("unsupported", "pruning does not know this layer's weights")
    if _is_builtin(layer):
        if layer.built and layer.trainable_weights and not isinstance(layer, _KEEP_DENSE):
            return Support("unsupported", "pruning does not know this layer's weights")
        return Support("none")
    return _custom_support(layer)


def _custom_support(layer) -> Support:
    base = next((c for c in type(layer).__mro__[1:] if c in _KERNELS or c in _RNN_LAYERS), None)
    if base is not None:
        return Support(
            "unsupported",
            f"it subclasses {base.__name__}, and subclasses are not matched as their base class "
            "(its call may use the weights differently); implement get_prunable_weights() "
            "(keras_compress.pruning.PrunableLayer) to prune it",
        )
    if layer.built and not layer.weights:
        return Support("none")
    return Support(
        "unsupported",
        "it is a custom layer: implement get_prunable_weights() "
        "(keras_compress.pruning.PrunableLayer), returning [] if it has nothing to prune",
    )


def _rnn_cells(layer) -> list:
    cell = layer.cell
    return list(cell.cells) if isinstance(cell, _L.StackedRNNCells) else [cell]


def _attribute(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def get_prunable_weights(layer, prune_depthwise: bool = False) -> list:
    """The variables of a built ``layer`` that pruning masks (tfmot's ``get_prunable_weights``).

    Returns ``[]`` for a layer with nothing to prune.

    Raises:
        PruningError: the layer is refused (the message names it and says why).

    Example:
        >>> import keras
        >>> lstm = keras.layers.LSTM(4, name="lstm")
        >>> lstm.build((None, 3, 2))
        >>> [w.path for w in get_prunable_weights(lstm)]
        ['lstm/lstm_cell/kernel', 'lstm/lstm_cell/recurrent_kernel']
    """
    verdict = support(layer, prune_depthwise)
    if verdict.kind == "unsupported":
        raise PruningError(unsupported_message(layer, verdict.reason))
    if verdict.kind == "none":
        return []
    if _custom_interface(layer):
        return list(layer.get_prunable_weights())
    cls = type(layer)
    if cls in _RNN_LAYERS:
        weights = []
        for cell in _rnn_cells(layer):
            if _custom_interface(cell):
                weights.extend(cell.get_prunable_weights())
            else:
                weights.extend([cell.kernel, cell.recurrent_kernel])
        return weights
    names = _KERNELS.get(cls) or _DEPTHWISE[cls]
    return [_attribute(layer, name) for name in names]


def attribute_names(layer, prune_depthwise: bool = False) -> tuple | None:
    """Names of the pruned weights when they are plain attributes of ``layer``, else None.

    Dense, Conv, SeparableConv and Embedding layers (and DepthwiseConv with
    ``prune_depthwise``) have them; RNN cells, MultiHeadAttention and custom
    layers do not (use :func:`get_prunable_weights`).
    """
    cls = type(layer)
    if _custom_interface(layer) or support(layer, prune_depthwise).kind != "prune":
        return None
    names = _KERNELS.get(cls) or _DEPTHWISE.get(cls)
    if names is None or any("." in n for n in names):
        return None
    return names


def m_by_n_axis(layer, weight) -> int | None:
    """The axis m-by-n groups run along for ``weight`` of ``layer``, or None (not applicable).

    Rank-2 weights group along their inputs (axis 0; an Embedding along its
    features), rank-4 kernels along their input channels; other ranks and
    depthwise kernels (which have no input-channel axis) return None.
    """
    if type(layer) in _DEPTHWISE:
        return None
    rank = len(weight.shape)
    if rank == 2:
        return -1 if type(layer) is _L.Embedding else 0
    if rank == 4:
        return -1 if type(layer) in _TRANSPOSED else -2
    return None


def unsupported_message(layer, reason: str) -> str:
    return (
        f"layer '{layer.name}' ({type(layer).__name__}) cannot be pruned: {reason}. "
        "Leave it out of the layers you wrap, or prune the other layers one by one with "
        "prune_low_magnitude(layer)"
    )
