"""Structured pruning: `prune_filters` removes whole filters / units.

Scattered zeros shrink the compressed file, but neither the Edge TPU nor
XNNPACK's int8 kernels skip them: only fewer channels buy latency.
:func:`prune_filters` ranks the output channels of Conv and Dense layers by
the L1 norm of their weights, keeps the strongest, and rebuilds a physically
smaller model: the producing layer gets fewer ``filters``/``units``, and every
layer its channels flow into shrinks to match (BatchNormalization, PReLU and
DepthwiseConv slice their per-channel weights, Flatten maps the channels to
its flattened positions, and the next Conv / SeparableConv / Dense drops the
matching input rows). Keras operations that are not layers (``x * 0.5``,
``relu6(x + 3)`` in MobileNetV3) pass channels through when they read one
tensor; nested Sequential / Functional models (ConvNeXt's stem) are followed
inside, and come back nested. Element-wise merges (Add, Multiply,
Concatenate, an operation on two tensors) need the same channels on every
input, so a layer whose channels reach one is refused with an error naming
the merge (or skipped with a warning when the layers were not named
explicitly). Layers are matched by their exact class.

For the 2:4 pattern (m-by-n), see ``prune_low_magnitude(...,
sparsity_m_by_n=(2, 4))``.

Example:
    >>> import keras
    >>> from keras_compress.pruning import prune_filters
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3),
    ...     keras.layers.BatchNormalization(), keras.layers.ReLU(),
    ...     keras.layers.Flatten(), keras.layers.Dense(4)])
    >>> small = prune_filters(model, 0.5)
    >>> small.layers[0].filters, small.count_params() < model.count_params()
    (4, True)
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_compress.errors import GraphError, PruningError
from keras_compress.graph import Graph, Node

__all__ = ["filter_importance", "prune_filters"]

_L = keras.layers

_PRODUCERS = (_L.Conv1D, _L.Conv2D, _L.SeparableConv1D, _L.SeparableConv2D, _L.Dense)
# Layers that take the channels as inputs (their kernel loses input rows) and stop propagation.
_CONSUMERS = (*_PRODUCERS, _L.GRU, _L.LSTM, _L.SimpleRNN)
_MERGES = (_L.Add, _L.Subtract, _L.Multiply, _L.Average, _L.Maximum, _L.Minimum, _L.Concatenate, _L.Dot)
_CHANNEL_NORMS = (_L.LayerNormalization, _L.GroupNormalization, _L.UnitNormalization, _L.Normalization)
_PASSTHROUGH = tuple(
    getattr(_L, n)
    for n in (
        "Activation", "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D",
        "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
        "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
        "UpSampling1D", "UpSampling2D", "Identity", "ActivityRegularization",
    )
    if hasattr(_L, n)
)
# Keras operations (not layers) that act on each channel alone when they read one tensor.
_ELEMENTWISE_OPS = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power", "Negative",
    "Square", "Sqrt", "Abs", "Exp", "Relu", "Relu6", "Sigmoid", "Tanh", "Gelu", "Silu", "HardSilu",
    "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Softplus", "Cast", "StopGradient", "Identity", "Clip",
}  # fmt: skip
# ConvNeXt's LayerScale (x * gamma, per channel) has no public class: matched by qualified name.
_CHANNEL_SCALE = ("keras.src.applications.convnext.LayerScale",)


def _out_kernel(layer):
    weights = layer.get_weights()  # [kernel, (bias)] or [depthwise, pointwise, (bias)]
    if isinstance(layer, (_L.SeparableConv1D, _L.SeparableConv2D)):
        return weights[1]
    return weights[0]


def filter_importance(layer) -> np.ndarray:
    """L1 norm of each output filter / unit of a Conv or Dense layer.

    Example:
        >>> import keras
        >>> d = keras.layers.Dense(3); d.build((None, 2))
        >>> filter_importance(d).shape
        (3,)
    """
    kernel = _out_kernel(layer)
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def _is_channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _bn_on_last_axis(layer, rank: int) -> bool:
    axis = layer.axis
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    return isinstance(axis, int) and axis in (-1, rank - 1)


def _qualname(layer) -> str:
    return f"{type(layer).__module__}.{type(layer).__name__}"


def _rank(graph: Graph, node: Node) -> int:
    return len(graph.shapes.get(node.inputs[0]) or ()) if node.inputs else 0


def _step(graph: Graph, node: Node, idx, where: str, producer: str):
    """How ``node`` takes the kept channels ``idx``: (plan kind, index array, whether to follow on)."""
    op = node.op
    if node.alias is not None:  # the input layer of a nested model: its declared shape shrinks
        return "input", idx, True
    if not node.is_layer:
        tensors = [r for r in node.inputs if graph.is_float(r)]
        if node.class_name in _ELEMENTWISE_OPS and len(tensors) == 1:
            return "none", idx, True
        raise PruningError(
            f"{where}, an operation on {len(tensors)} tensors that needs all their channels (a merge, reshape "
            f"or reduction); leave '{producer}' out of `layers`"
        )
    kind = type(op)
    if kind in _CONSUMERS:
        if getattr(op, "groups", 1) != 1 or not _is_channels_last(op):
            raise PruningError(f"{where}, which uses groups or channels_first; leave '{producer}' out of `layers`")
        return "in", idx, False
    if kind in (_L.DepthwiseConv1D, _L.DepthwiseConv2D):
        if not _is_channels_last(op):
            raise PruningError(f"{where}, which uses channels_first")
        return "depthwise", idx, True  # (its outputs: every multiplier of each kept channel)
    if kind is _L.BatchNormalization:
        if not _bn_on_last_axis(op, _rank(graph, node)):
            raise PruningError(f"{where}, which normalizes axis {op.axis}, not channels")
        return "channel", idx, True
    if kind is _L.PReLU:
        if op.get_weights()[0].shape[-1] != graph.shapes[node.inputs[0]][-1]:
            raise PruningError(f"{where}, whose alpha is shared across channels")
        return "channel", idx, True
    if _qualname(op) in _CHANNEL_SCALE:
        return "channel", idx, True
    if kind is _L.Flatten:
        shape = graph.shapes[node.inputs[0]]
        positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        return "none", (np.arange(positions)[:, None] * shape[-1] + idx[None, :]).ravel(), True
    if kind in _PASSTHROUGH:
        if not _is_channels_last(op):
            raise PruningError(f"{where}, which uses channels_first")
        return "none", idx, True
    raise PruningError(f"{where}, {_why_not(op)}; leave '{producer}' out of `layers`")


def _why_not(layer) -> str:
    """Why the channels cannot flow through ``layer``."""
    if type(layer) in _MERGES:
        return "a merge whose inputs must keep the same channels (its other inputs keep all of theirs)"
    if type(layer) in _CHANNEL_NORMS:
        return "which normalizes over the channels (removing some changes the others' statistics)"
    if type(layer) in (_L.Reshape, _L.Permute, _L.RepeatVector):
        return "which moves channels to other axes"
    return "which needs all its input channels (prune_filters does not know how to shrink it)"


def _plan(graph: Graph, producer: Node, keep):
    """Follows ``producer``'s channels; returns {node key: (kind, index array)} or raises."""
    name = producer.name
    if graph.is_output(producer.output()):
        raise PruningError(
            f"layer '{name}': its output is a model output; removing its units would change the model's output shape"
        )
    stack = [(c, keep) for c in graph.consumers(producer.output())]
    if not stack:
        raise PruningError(f"layer '{name}': nothing consumes its output")
    plan = {}
    while stack:
        node, idx = stack.pop()
        where = f"the filters of '{name}' reach {node.describe()}"
        if graph.shared(node):
            raise PruningError(f"{where}, a layer shared by several inputs; cannot shrink it")
        if node.key in plan:
            raise PruningError(f"{where} along two paths; cannot shrink it")
        kind, idx, follow = _step(graph, node, idx, where, name)
        plan[node.key] = (kind, idx)
        if kind == "depthwise":
            mult = node.op.depth_multiplier
            idx = (idx[:, None] * mult + np.arange(mult)[None, :]).ravel()
        if follow:
            if graph.is_output(node.output()):
                raise PruningError(f"{where}, which is a model output; its shape would change")
            stack.extend((c, idx) for c in graph.consumers(node.output()))
    return plan


def _slice_weights(layer, weights, in_idx, out_idx):
    """New weight arrays of `layer` for kept input / output channel indices."""
    w = list(weights)
    if type(layer) in (_L.SeparableConv1D, _L.SeparableConv2D):
        mult = layer.depth_multiplier
        if in_idx is not None:
            w[0] = np.take(w[0], in_idx, axis=-2)
            rows = (in_idx[:, None] * mult + np.arange(mult)[None, :]).ravel()
            w[1] = np.take(w[1], rows, axis=-2)
        if out_idx is not None:
            w[1] = np.take(w[1], out_idx, axis=-1)
            if len(w) > 2:
                w[2] = w[2][out_idx]
        return w
    if type(layer) in _CONSUMERS:  # Conv / Dense, or a recurrent layer (its input kernel only)
        if in_idx is not None:
            w[0] = np.take(w[0], in_idx, axis=-2)
        if out_idx is not None:
            w[0] = np.take(w[0], out_idx, axis=-1)
            if len(w) > 1:
                w[1] = w[1][out_idx]
        return w
    if type(layer) in (_L.DepthwiseConv1D, _L.DepthwiseConv2D):
        mult = layer.depth_multiplier
        w[0] = np.take(w[0], in_idx, axis=-2)
        if len(w) > 1:
            w[1] = w[1][(in_idx[:, None] * mult + np.arange(mult)[None, :]).ravel()]
        return w
    if type(layer) is _L.PReLU:
        return [np.take(w[0], in_idx, axis=-1)]
    # BatchNormalization, LayerScale: every weight is per channel.
    return [np.take(a, in_idx, axis=-1) for a in w]


def _read(model) -> Graph:
    if not isinstance(model, keras.Model):
        raise PruningError(f"prune_filters needs a keras.Model, got {type(model).__name__}")
    try:
        graph = Graph(model)
    except GraphError as e:
        raise PruningError(f"prune_filters: {e}") from None
    for node in graph.nodes:
        if type(node.op).__name__ == "PruneLowMagnitude":
            raise PruningError(
                f"prune_filters: layer '{node.op.name}' is under magnitude pruning; call strip_pruning(model) first"
            )
        if isinstance(node.op, keras.Model):
            raise PruningError(
                f"prune_filters: layer {node.describe()} of '{model.name}' is a subclassed model whose graph "
                "cannot be read; prune_filters follows Sequential and Functional models (nested ones too)"
            )
    return graph


def _producers(graph: Graph, layers) -> tuple[list[Node], bool]:
    """The nodes to shrink: the ones named in ``layers``, or every Conv / Dense."""
    if layers is None:
        return [n for n in graph.nodes if type(n.op) in _PRODUCERS], False
    by_name = {}
    for n in graph.nodes:
        by_name.setdefault(n.name, n)
        by_name.setdefault(getattr(n.op, "name", n.name), n)
    chosen = []
    for item in layers:
        name = item if isinstance(item, str) else item.name
        node = by_name.get(name)
        if node is None or node.is_input:
            raise PruningError(f"prune_filters: model '{graph.model.name}' has no layer '{name}'")
        if type(node.op) not in _PRODUCERS:
            raise PruningError(
                f"layer '{name}' ({type(node.op).__name__}) has no filters or units to remove: "
                "expected Conv1D, Conv2D, SeparableConv1D/2D or Dense"
            )
        chosen.append(node)
    return chosen, True


def _plans(graph: Graph, producers, fraction, explicit):
    """{producer key: (kept indices, plan)} for every producer that can be shrunk; warns about the rest."""
    plans, skipped = {}, []
    for node in producers:
        layer = node.op
        try:
            if graph.shared(node):
                raise PruningError(f"layer '{node.name}' is shared by several inputs; cannot shrink it")
            if getattr(layer, "groups", 1) != 1:
                raise PruningError(
                    f"layer '{node.name}' is a grouped convolution (groups={layer.groups}); "
                    "prune_filters shrinks convolutions with groups=1"
                )
            if not _is_channels_last(layer):
                raise PruningError(f"layer '{node.name}' uses channels_first; prune_filters needs channels_last")
            score = filter_importance(layer)
            n_keep = max(1, round(len(score) * (1.0 - fraction)))
            keep = np.sort(np.argsort(-score, kind="stable")[:n_keep])
            plans[node.key] = (keep, _plan(graph, node, keep))
        except PruningError as e:
            if explicit:
                raise
            skipped.append(str(e))
    if skipped:
        warnings.warn("prune_filters skipped: " + "; ".join(skipped), stacklevel=3)
    if not plans:
        raise PruningError(f"prune_filters: no layer of '{graph.model.name}' can be shrunk: {skipped}")
    return plans


def _strip_build_shapes(obj):
    """Drops recorded build shapes from a config (the channel counts change)."""
    if isinstance(obj, dict):
        obj.pop("build_config", None)
        obj.pop("build_input_shape", None)
        for v in obj.values():
            _strip_build_shapes(v)
    elif isinstance(obj, list):
        for v in obj:
            _strip_build_shapes(v)


def _rebuild(model, graph: Graph, plans):
    """The smaller model from the edited config; returns it with {key: (in idx, out idx, channel idx)}."""
    slices: dict = {}
    for key, (keep, plan) in plans.items():
        node = graph.node(*key)
        cfg = node.entry["config"]
        cfg["units" if "units" in cfg else "filters"] = len(keep)
        slices.setdefault(key, [None, None, None])[1] = keep
        for target, (kind, idx) in plan.items():
            if kind == "in":
                slices.setdefault(target, [None, None, None])[0] = idx
            elif kind in ("channel", "depthwise"):
                slices.setdefault(target, [None, None, None])[2] = idx
            elif kind == "input":  # a nested model's input layer: its declared channels
                cfg = graph.node(*target).entry["config"]
                cfg["batch_shape"] = [*cfg["batch_shape"][:-1], len(idx)]
    _strip_build_shapes(graph.config)
    return type(model).from_config(graph.config), slices


def prune_filters(model, fraction=0.5, layers=None, verbose=False):
    """Removes the weakest ``fraction`` of filters / units and returns a smaller model.

    Args:
        model: A Sequential or Functional model (nested ones are followed; not
            under ``prune_low_magnitude``: strip it first).
        fraction: Fraction of output channels removed from each selected
            layer, in (0, 1); at least one channel is kept.
        layers: Names (or layer objects) of the Conv1D/Conv2D/SeparableConv/
            Dense layers to shrink. ``None`` selects every such layer whose
            channels can be removed (layers that feed the model output or an
            Add / Concatenate are skipped with a warning).
        verbose: Print one line per shrunk layer.

    Returns:
        A new, uncompiled model of the same type (nested models stay nested)
        with fewer channels, carrying the kept weights. Fine-tune it to
        recover accuracy.

    Raises:
        PruningError: an explicitly named layer cannot be shrunk (the message
            names the layer that blocks it and why), or ``fraction`` is out of range.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise PruningError(f"fraction must be a float in (0, 1), got {fraction!r}")
    graph = _read(model)
    producers, explicit = _producers(graph, layers)
    plans = _plans(graph, producers, fraction, explicit)
    new_model, slices = _rebuild(model, graph, plans)
    done = set()
    for node in graph.nodes:
        layer = node.op
        if not node.is_layer or id(layer) in done or not layer.weights:
            continue
        done.add(id(layer))
        weights = layer.get_weights()
        in_idx, out_idx, channel_idx = slices.get(node.key, (None, None, None))
        if in_idx is not None or out_idx is not None:
            weights = _slice_weights(layer, weights, in_idx, out_idx)
        elif channel_idx is not None:
            weights = _slice_weights(layer, weights, channel_idx, None)
        graph.locate(new_model, node).set_weights(weights)
        if verbose and out_idx is not None:
            print(f"{node.name}: {len(filter_importance(layer))} -> {len(out_idx)} channels")
    return new_model
