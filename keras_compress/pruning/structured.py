"""Structured pruning: `prune_filters` removes whole filters / units.

Scattered zeros shrink the compressed file, but neither the Edge TPU nor
XNNPACK's int8 kernels skip them: only fewer channels buy latency.
:func:`prune_filters` ranks the output channels of Conv and Dense layers by
the L1 norm of their weights, keeps the strongest, and rebuilds a physically
smaller model: the producing layer gets fewer ``filters``/``units``, and every
layer its channels flow into shrinks to match (BatchNormalization, PReLU and
DepthwiseConv slice their per-channel weights, Flatten maps the channels to
its flattened positions, and the next Conv / SeparableConv / Dense drops the
matching input rows). Element-wise merges (Add, Multiply, Concatenate, ...)
need the same channels on every input, so a layer whose channels reach one is
refused with an error naming the merge (or skipped with a warning when the
layers were not named explicitly).

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

from keras_compress.errors import PruningError

__all__ = ["prune_filters", "filter_importance"]

_L = keras.layers

_PRODUCERS = (_L.Conv1D, _L.Conv2D, _L.SeparableConv1D, _L.SeparableConv2D, _L.Dense)
_CONSUMERS = _PRODUCERS  # layers that take the channels as inputs and stop propagation
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


def _out_kernel(layer):
    weights = layer.get_weights()  # [kernel, (bias)] or [depthwise, pointwise, (bias)]
    if isinstance(layer, (_L.SeparableConv1D, _L.SeparableConv2D)):
        return weights[1]
    return weights[0]


def filter_importance(layer) -> np.ndarray:
    """L1 norm of each output filter / unit of a Conv or Dense layer."""
    kernel = _out_kernel(layer)
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def _history_names(obj, out):
    """Collects the layer names referenced by keras tensors in a node's args."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            out.append(obj["config"]["keras_history"][0])
        else:
            for v in obj.values():
                _history_names(v, out)
    elif isinstance(obj, (list, tuple)):
        if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
            out.append(obj[0])  # legacy [name, node_index, tensor_index]
        else:
            for v in obj:
                _history_names(v, out)


class _Graph:
    def __init__(self, model):
        self.model = model
        self.config = model.get_config()
        self.sequential = isinstance(model, keras.Sequential)
        self.cfg = {}  # name -> layer config dict (mutable, inside self.config)
        self.consumers = {}
        self.n_nodes = {}
        layer_cfgs = self.config["layers"]
        if self.sequential:
            names = [c["config"]["name"] for c in layer_cfgs if c["class_name"] != "InputLayer"]
            for c in layer_cfgs:
                self.cfg[c["config"]["name"]] = c
            for a, b in zip(names, names[1:]):
                self.consumers.setdefault(a, []).append(b)
            self.outputs = {names[-1]}
            for n in names:
                self.n_nodes[n] = 1
        else:
            for c in layer_cfgs:
                name = c.get("name", c["config"]["name"])
                self.cfg[name] = c
                self.n_nodes[name] = len(c.get("inbound_nodes", []))
                for node in c.get("inbound_nodes", []):
                    sources = []
                    _history_names(node, sources)
                    for s in dict.fromkeys(sources):
                        self.consumers.setdefault(s, []).append(name)
            outs = []
            _history_names(self.config["output_layers"], outs)
            self.outputs = set(outs)


def _is_channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _bn_on_last_axis(layer) -> bool:
    axis = layer.axis
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis == -1:
        return True
    return isinstance(axis, int) and axis == len(layer.input.shape) - 1


def _plan(graph, producer, keep):
    """Follows `producer`'s channels; returns {layer name: (kind, index array)} or raises."""
    model = graph.model
    plan = {}
    if producer.name in graph.outputs:
        raise PruningError(
            f"layer '{producer.name}': its output is a model output; removing its "
            "units would change the model's output shape"
        )
    stack = [(c, keep, producer.name) for c in graph.consumers.get(producer.name, [])]
    if not stack:
        raise PruningError(f"layer '{producer.name}': nothing consumes its output")
    while stack:
        name, idx, src = stack.pop()
        layer = model.get_layer(name)
        where = f"the filters of '{producer.name}' reach '{name}' ({type(layer).__name__})"
        if graph.n_nodes.get(name, 1) > 1:
            raise PruningError(f"{where}, a layer shared by several inputs; cannot shrink it")
        if name in plan:
            raise PruningError(f"{where} along two paths; cannot shrink it")
        follow = True
        if isinstance(layer, _CONSUMERS):
            if getattr(layer, "groups", 1) != 1 or not _is_channels_last(layer):
                raise PruningError(f"{where}, which uses groups or channels_first")
            plan[name] = ("in", idx)
            follow = False
        elif isinstance(layer, (_L.DepthwiseConv1D, _L.DepthwiseConv2D)):
            if not _is_channels_last(layer):
                raise PruningError(f"{where}, which uses channels_first")
            mult = layer.depth_multiplier
            plan[name] = ("depthwise", idx)
            idx = (idx[:, None] * mult + np.arange(mult)[None, :]).ravel()
        elif isinstance(layer, _L.BatchNormalization):
            if not _bn_on_last_axis(layer):
                raise PruningError(f"{where}, which normalizes axis {layer.axis}, not channels")
            plan[name] = ("channel", idx)
        elif isinstance(layer, _L.PReLU):
            alpha = layer.get_weights()[0]
            if alpha.shape[-1] != layer.input.shape[-1]:
                raise PruningError(f"{where}, whose alpha is shared across channels")
            plan[name] = ("channel", idx)
        elif isinstance(layer, _L.Flatten):
            shape = layer.input.shape
            channels = shape[-1]
            positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
            idx = (np.arange(positions)[:, None] * channels + idx[None, :]).ravel()
            plan[name] = ("none", idx)
        elif isinstance(layer, _PASSTHROUGH):
            if not _is_channels_last(layer):
                raise PruningError(f"{where}, which uses channels_first")
            plan[name] = ("none", idx)
        else:
            raise PruningError(
                f"{where}, which needs all its input channels (merges such as Add across a "
                "residual connection, Concatenate, Reshape, normalization over channels); "
                f"leave '{producer.name}' out of `layers`"
            )
        if follow:
            if name in graph.outputs:
                raise PruningError(f"{where}, which is a model output; its shape would change")
            for c in graph.consumers.get(name, []):
                stack.append((c, idx, name))
    return plan


def _slice_weights(layer, weights, in_idx, out_idx):
    """New weight arrays of `layer` for kept input / output channel indices."""
    w = list(weights)
    if isinstance(layer, (_L.SeparableConv1D, _L.SeparableConv2D)):
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
    if isinstance(layer, _PRODUCERS):
        if in_idx is not None:
            w[0] = np.take(w[0], in_idx, axis=-2)
        if out_idx is not None:
            w[0] = np.take(w[0], out_idx, axis=-1)
            if len(w) > 1:
                w[1] = w[1][out_idx]
        return w
    if isinstance(layer, (_L.DepthwiseConv1D, _L.DepthwiseConv2D)):
        mult = layer.depth_multiplier
        w[0] = np.take(w[0], in_idx, axis=-2)
        if len(w) > 1:
            w[1] = w[1][(in_idx[:, None] * mult + np.arange(mult)[None, :]).ravel()]
        return w
    if isinstance(layer, _L.PReLU):
        return [np.take(w[0], in_idx, axis=-1)]
    # BatchNormalization: every weight is per channel.
    return [np.take(a, in_idx, axis=-1) for a in w]


def prune_filters(model, fraction=0.5, layers=None, verbose=False):
    """Removes the weakest ``fraction`` of filters / units and returns a smaller model.

    Args:
        model: A Sequential or Functional model (not nested, not under
            ``prune_low_magnitude``; strip it first).
        fraction: Fraction of output channels removed from each selected
            layer, in (0, 1); at least one channel is kept.
        layers: Names (or layer objects) of the Conv1D/Conv2D/SeparableConv/
            Dense layers to shrink. ``None`` selects every such layer whose
            channels can be removed (layers that feed the model output or an
            Add / Concatenate are skipped with a warning).
        verbose: Print one line per shrunk layer.

    Returns:
        A new, uncompiled ``keras.Model`` with fewer channels, carrying the
        kept weights. Fine-tune it to recover accuracy.

    Raises:
        PruningError: an explicitly named layer cannot be shrunk (the message
            names the layer that blocks it), or ``fraction`` is out of range.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise PruningError(f"fraction must be a float in (0, 1), got {fraction!r}")
    if not isinstance(model, keras.Model):
        raise PruningError(f"prune_filters needs a keras.Model, got {type(model).__name__}")
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise PruningError(
                f"prune_filters: layer '{layer.name}' of '{model.name}' is a nested model; "
                "prune_filters works on flat Sequential / Functional models"
            )
        if type(layer).__name__ == "PruneLowMagnitude":
            raise PruningError(
                f"prune_filters: layer '{layer.name}' is under magnitude pruning; call "
                "strip_pruning(model) first"
            )
    try:
        graph = _Graph(model)
    except (KeyError, TypeError, NotImplementedError) as e:
        raise PruningError(
            f"prune_filters: model '{model.name}' ({type(model).__name__}) is not a "
            f"Sequential or Functional model ({e})"
        ) from None

    explicit = layers is not None
    if explicit:
        names = [l if isinstance(l, str) else l.name for l in layers]
        for n in names:
            try:
                layer = model.get_layer(n)
            except ValueError:
                raise PruningError(f"prune_filters: model '{model.name}' has no layer '{n}'") from None
            if not isinstance(layer, _PRODUCERS):
                raise PruningError(
                    f"layer '{n}' ({type(layer).__name__}) has no filters or units to remove: "
                    "expected Conv1D, Conv2D, SeparableConv1D/2D or Dense"
                )
    else:
        names = [l.name for l in model.layers if isinstance(l, _PRODUCERS)]

    out_keep, in_keep, skipped = {}, {}, []
    plans = {}
    for n in names:
        layer = model.get_layer(n)
        try:
            if getattr(layer, "groups", 1) != 1 or not _is_channels_last(layer):
                raise PruningError(f"layer '{n}' uses groups or channels_first")
            score = filter_importance(layer)
            n_keep = max(1, int(round(len(score) * (1.0 - fraction))))
            keep = np.sort(np.argsort(-score, kind="stable")[:n_keep])
            plans[n] = (keep, _plan(graph, layer, keep))
        except PruningError as e:
            if explicit:
                raise
            skipped.append(str(e))
    if skipped:
        warnings.warn("prune_filters skipped: " + "; ".join(skipped), stacklevel=2)
    if not plans:
        raise PruningError(f"prune_filters: no layer of '{model.name}' can be shrunk: {skipped}")

    channel_idx = {}  # layer -> index array for its per-channel weights (BN, depthwise, PReLU)
    for n, (keep, plan) in plans.items():
        out_keep[n] = keep
        for target, (kind, idx) in plan.items():
            if kind == "in":
                in_keep[target] = idx
            elif kind in ("channel", "depthwise"):
                channel_idx[target] = idx

    config = graph.config
    for n, keep in out_keep.items():
        cfg = graph.cfg[n]["config"]
        cfg["units" if "units" in cfg else "filters"] = int(len(keep))
    for c in config["layers"]:
        c.pop("build_config", None)
    new_model = type(model).from_config(config)

    for layer in model.layers:
        if not layer.weights:
            continue
        name = layer.name
        weights = layer.get_weights()
        if name in out_keep or name in in_keep:
            weights = _slice_weights(layer, weights, in_keep.get(name), out_keep.get(name))
        elif name in channel_idx:
            weights = _slice_weights(layer, weights, channel_idx[name], None)
        new_model.get_layer(name).set_weights(weights)
        if verbose and name in out_keep:
            before = len(filter_importance(layer))
            print(f"{name}: {before} -> {len(out_keep[name])} channels")
    return new_model
