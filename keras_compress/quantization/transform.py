"""The QAT graph rewrite: decide how each node of a model quantizes, then rebuild it.

Read through :class:`keras_compress.graph.Graph` (nested models inlined,
Keras operations such as ``x + 3.0`` included as nodes), then, step by step:

1. :func:`select`: which nodes to quantize (annotated ones, all but
   ``float_layers``...), unwrapping ``QuantizeAnnotate``.
2. :func:`classify`: the :class:`~keras_compress.quantization.registry.Kind`
   of each (integer and boolean nodes, such as mask computations, stay as
   they are); a node that cannot be quantized is an error naming it.
3. :func:`fold_batch_norms`: a Conv / Dense followed only by a
   BatchNormalization becomes one wrapper with the BatchNormalization folded.
4. :func:`fuse`: a producer whose only consumer is a ReLU gets no range of its
   own (TFLite fuses the ReLU into it); one whose only consumer is a
   Concatenate takes the concatenation's range (TFLite wants one scale).
5. :func:`rebuild`: a new model calling copies of the layers, wrapped in
   :class:`~keras_compress.quantization.QuantizeWrapper` where quantized, with
   a :class:`~keras_compress.quantization.QuantizeLayer` where a quantized
   node reads a float tensor (a model input, a float layer's output), and a
   QuantizeLayer after each quantized Keras operation.

Example:
    >>> import keras
    >>> from keras_compress.graph import Graph
    >>> inp = keras.Input((4, 4, 3))
    >>> x = keras.layers.Conv2D(2, 1, name="c")(inp)
    >>> x = keras.layers.BatchNormalization(name="bn")(x)
    >>> out = keras.layers.ReLU(name="r")(x)
    >>> g = Graph(keras.Model(inp, out))
    >>> plan = select(g, annotated_only=False, float_layers=set(), model_name="m")
    >>> classify(g, plan); fold_batch_norms(g, plan); fuse(g, plan)
    >>> {k[0]: v.name for k, v in plan.folded.items()}, sorted(k[0] for k in plan.fused)
    ({'c': 'bn'}, ['c'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import keras
from keras import ops

from keras_compress.errors import QuantizationError, UnsupportedLayerError
from keras_compress.graph import (
    Graph,
    Node,
    TensorRef,
    clone_layer,
    substitute,
    tensor_refs,
)
from keras_compress.quantization import quantizers as Q
from keras_compress.quantization import registry
from keras_compress.quantization.config import (
    Default8BitQuantizeConfig,
    OutputOnlyConfig,
)
from keras_compress.quantization.registry import Kind
from keras_compress.quantization.wrapper import (
    QuantizeAnnotate,
    QuantizeLayer,
    QuantizeWrapper,
)

__all__ = ["Plan", "classify", "fold_batch_norms", "fuse", "quantize_graph", "rebuild", "select"]

_L = keras.layers
# Producers TFLite can fuse a following ReLU into (CONV_2D, FULLY_CONNECTED, ADD, MUL, SUB...).
_FUSES_RELU_OPS = {"Add", "Subtract", "Multiply"}
_FUSES_RELU_LAYERS = (_L.Add, _L.Subtract, _L.Multiply)


@dataclass
class Plan:
    """How each node (by ``(name, call)`` key) is quantized."""

    layers: dict = field(default_factory=dict)  # key -> the real layer (annotation removed) or operation
    configs: dict = field(default_factory=dict)  # key -> QuantizeConfig of an annotated custom layer
    wanted: set = field(default_factory=set)  # keys to quantize
    kinds: dict = field(default_factory=dict)  # key -> Kind
    fixed: dict = field(default_factory=dict)  # key -> fixed-range activation name of an operation
    rewrite: set = field(default_factory=set)  # operations rewritten to an int8-friendly op
    folded: dict = field(default_factory=dict)  # producer key -> BatchNormalization node
    absorbed: dict = field(default_factory=dict)  # BatchNormalization key -> producer node
    fused: set = field(default_factory=set)  # keys whose output takes its consumer's range
    output_only: set = field(default_factory=set)  # float layers whose output an annotated layer reads
    through: set = field(default_factory=set)  # same-scale float layers between those and the annotated layer


def select(graph: Graph, *, annotated_only: bool, float_layers: set, model_name: str) -> Plan:
    """Step 1: the nodes to quantize; ``float_layers`` names checked."""
    plan = Plan()
    names = {n.name for n in graph.nodes} | {getattr(n.op, "name", n.name) for n in graph.nodes}
    names |= {n.op.layer.name for n in graph.nodes if isinstance(n.op, QuantizeAnnotate)}
    unknown = sorted(set(float_layers) - names)
    if unknown:
        raise QuantizationError(
            f"float_layers: no layer named {', '.join(map(repr, unknown))} in model '{model_name}' "
            f"(its layers: {', '.join(sorted(n.name for n in graph.nodes if not n.is_input))})"
        )
    for node in graph.nodes:
        if node.is_input or node.alias is not None:
            continue
        op = node.op
        annotated = isinstance(op, QuantizeAnnotate)
        real = op.layer if annotated else op
        plan.layers[node.key] = real
        if annotated and op.quantize_config is not None:
            plan.configs[node.key] = op.quantize_config
        own = {node.name, getattr(op, "name", None), getattr(real, "name", None)}
        if own & set(float_layers) or (annotated_only and not annotated):
            continue
        if type(real) is _L.Lambda and not annotated:
            warnings.warn(
                f"layer '{real.name}' (Lambda) is left in float: a Lambda's computation cannot be read from "
                "its config; write it as a custom layer with a QuantizeConfig to quantize it",
                stacklevel=3,
            )
            continue
        plan.wanted.add(node.key)
    if annotated_only:
        _output_only(graph, plan)
    return plan


def _output_only(graph: Graph, plan: Plan) -> None:
    """tfmot's rule: the float layer an annotated layer reads (its only input) gets a range on its output."""
    for node in graph.nodes:
        if node.key not in plan.wanted or len(node.inputs) != 1:
            continue
        source = graph.producer(node.inputs[0])
        chain = []
        while _unwanted_passthrough(source, plan):  # Flatten, Reshape...: the range reaches through them
            chain.append(source.key)
            source = graph.producer(source.inputs[0])
        real = plan.layers.get(source.key)
        if source.key in plan.wanted or not source.is_layer or isinstance(source.op, QuantizeAnnotate):
            continue
        if registry.kind_of(real) not in (None, Kind.PASSTHROUGH) and graph.is_float(source.output()):
            plan.output_only.add(source.key)
            plan.through.update(chain)


def _unwanted_passthrough(node: Node, plan: Plan) -> bool:
    """A float layer of one input that keeps its input's scale (so its input's range is its own)."""
    if not node.is_layer or node.key in plan.wanted or len(node.inputs) != 1 or node.key not in plan.layers:
        return False
    return registry.kind_of(plan.layers[node.key]) is Kind.PASSTHROUGH


def _float_in(graph: Graph, node: Node) -> bool:
    return any(graph.is_float(r) for r in node.inputs)


def classify(graph: Graph, plan: Plan) -> None:
    """Step 2: the kind of every wanted node; raises for one that cannot be quantized."""
    for node in graph.nodes:
        if node.key not in plan.wanted:
            continue
        real = plan.layers[node.key]
        if node.key in plan.configs:
            plan.kinds[node.key] = Kind.CUSTOM
            continue
        if isinstance(real, _L.Embedding) and type(real) is _L.Embedding:
            plan.kinds[node.key] = Kind.EMBEDDING
            continue
        if not _float_in(graph, node) or not graph.is_float(node.output()):
            continue  # integer / boolean computations (masks, indices) stay as they are
        if node.is_layer:
            kind, reason = registry.kind_of(real), None
            if kind is None:
                reason = registry.unquantizable_reason(real)
            else:
                tensors = {k for k, v in node.kwargs.items() if tensor_refs(v)}
                reason = registry.call_reason(real, tensors, node.kwargs)
                kind = None if reason else kind
        else:
            tensor_args = len([r for r in node.inputs if graph.is_float(r)])
            kind, extra = registry.kind_of_op(node.class_name, tensor_args)
            reason = extra if kind is None else None
            if extra in ("sigmoid", "tanh", "softmax"):
                plan.fixed[node.key] = extra
            elif extra == "rewrite":
                plan.rewrite.add(node.key)
        if kind is None and isinstance(node.op, QuantizeAnnotate) and not _resolvable(type(real)):
            raise UnsupportedLayerError(_CLONE_MESSAGE)
        if kind is None:
            what = f"layer '{real.name}' ({type(real).__name__})" if node.is_layer else f"operation {node.describe()}"
            where = f" in '{'/'.join(node.scope)}'" if node.scope and node.is_layer else ""
            name = real.name if node.is_layer else node.name
            raise UnsupportedLayerError(
                f"{what}{where} cannot be quantized: {reason}; leave it in float with "
                f"quantize_model(..., float_layers=['{name}'])"
            )
        plan.kinds[node.key] = kind


# tfmot's words (its test suite compares them) for an annotated custom class, with no QuantizeConfig,
# that Keras cannot find by name; once in quantize_scope() it gets our error naming the layer
_CLONE_MESSAGE = (
    "Unable to clone model. This generally happens if you used custom Keras layers or objects in your model. "
    "Please specify them via `quantize_scope` for your calls to `quantize_model` and `quantize_apply`."
)


def _resolvable(cls) -> bool:
    """Whether Keras finds ``cls`` by its name: a Keras class, a registered one, or one in a custom-object scope."""
    import keras

    if cls.__module__.startswith("keras."):
        return True
    return keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is cls


def _sole_consumer(graph: Graph, node: Node) -> Node | None:
    ref = node.output()
    users = graph.consumers(ref)
    if len(users) != 1 or graph.is_output(ref) or graph.shared(users[0]):
        return None
    return users[0]


def _bn_on_last_axis(bn, rank: int) -> bool:
    axis = bn.axis[0] if isinstance(bn.axis, (list, tuple)) and len(bn.axis) == 1 else bn.axis
    return isinstance(axis, int) and axis in (-1, rank - 1)


def fold_batch_norms(graph: Graph, plan: Plan) -> None:
    """Step 3: a Conv / Dense whose only consumer is a BatchNormalization absorbs it."""
    for node in graph.nodes:
        if plan.kinds.get(node.key) is not Kind.KERNEL or graph.shared(node):
            continue
        k = registry.kernel_layer(plan.layers[node.key])
        if type(k) not in registry.FOLDABLE or registry.activation_name(k.activation) not in ("linear", None):
            continue
        nxt = _sole_consumer(graph, node)
        if nxt is None or plan.kinds.get(nxt.key) is not Kind.AFFINE:
            continue
        bn = plan.layers[nxt.key]
        rank = len(graph.shapes.get(node.output()) or ())
        if type(bn) is _L.BatchNormalization and _bn_on_last_axis(bn, rank):
            plan.folded[node.key] = nxt
            plan.absorbed[nxt.key] = node


def _last(plan: Plan, node: Node) -> Node:
    """The node whose output the producer's wrapper computes (its folded BatchNormalization, if any)."""
    return plan.folded.get(node.key, node)


def _fuses_relu(plan: Plan, node: Node) -> bool:
    kind, real = plan.kinds.get(node.key), plan.layers.get(node.key)
    if kind is Kind.KERNEL:
        k = registry.kernel_layer(real)
        return type(k) is not _L.EinsumDense and registry.activation_name(k.activation) in ("linear", None)
    if kind is Kind.AFFINE:
        return True
    if kind is Kind.OUTPUT:
        return type(real) in _FUSES_RELU_LAYERS if node.is_layer else node.class_name in _FUSES_RELU_OPS
    return False


def _is_concat(plan: Plan, node: Node) -> bool:
    return plan.kinds.get(node.key) is Kind.OUTPUT and (
        type(plan.layers[node.key]) is _L.Concatenate if node.is_layer else node.class_name == "Concatenate"
    )


def fuse(graph: Graph, plan: Plan) -> None:
    """Step 4: producers that take their consumer's range (a fused ReLU, a Concatenate)."""
    for node in graph.nodes:
        kind = plan.kinds.get(node.key)
        if kind is None or node.key in plan.absorbed or graph.shared(node):
            continue
        nxt = _sole_consumer(graph, _last(plan, node))
        if nxt is None:
            continue
        if plan.kinds.get(nxt.key) is Kind.RELU and _fuses_relu(plan, node) or _is_concat(plan, nxt) and kind in (Kind.KERNEL, Kind.OUTPUT, Kind.RELU, Kind.AFFINE):
            plan.fused.add(node.key)


class _Builder:
    """Step 5: the new graph, node by node (see :func:`rebuild`)."""

    def __init__(self, graph: Graph, plan: Plan, preserve_sparsity: bool, preserve_clusters: bool = False):
        self.graph, self.plan, self.preserve_sparsity = graph, plan, preserve_sparsity
        self.preserve_clusters = preserve_clusters
        self.status: dict[TensorRef, str] = {}  # "q" has a range, "fused" takes its consumer's, "f" float, "i" not float
        self.quantized: dict[TensorRef, object] = {}
        self.clones: dict[int, object] = {}
        self.tensors: dict = {}

    def clone(self, layer):
        if id(layer) not in self.clones:
            self.clones[id(layer)] = clone_layer(layer)
        return self.clones[id(layer)]

    def state(self, ref: TensorRef) -> str:
        if ref in self.status:
            return self.status[ref]
        source = self.graph.producer(ref)
        if source.alias is not None:  # the input of a nested model: its outer tensor
            return self.state(source.alias)
        return "f" if _is_float(self.tensors[ref]) else "i"

    def ensure_quantized(self, ref: TensorRef, accept_fused: bool = False):
        st = self.state(ref)
        if st in ("q", "i") or (st == "fused" and accept_fused):
            return self.tensors[ref]
        if ref not in self.quantized:
            source = self.graph.producer(ref)
            name = f"quantize_{source.name}" if source.is_input and ref.index == 0 else None
            self.quantized[ref] = QuantizeLayer(name=name)(self.tensors[ref])
        return self.quantized[ref]

    def arguments(self, node: Node, quantize: bool, accept_fused: bool = False):
        if quantize:
            fn = lambda r: self.ensure_quantized(r, accept_fused) if self.graph.is_float(r) else self.tensors[r]
        else:
            fn = self.tensors.__getitem__
        args = substitute(node.args, fn)
        kwargs = substitute(node.kwargs, fn)
        kwargs.pop("training", None)
        return args, kwargs

    def __call__(self, node: Node, tensors: dict):
        self.tensors = tensors
        key, plan = node.key, self.plan
        if key in plan.absorbed:  # produced by its conv's wrapper
            producer = plan.absorbed[key]
            self.status[node.output()] = self.state(producer.output())
            return tensors[producer.output()]
        kind = plan.kinds.get(key)
        if key in plan.output_only:
            return self.output_only(node)
        if kind is None or kind is Kind.PASSTHROUGH:
            return self.replay(node, kind is not None or key in plan.through)
        if not node.is_layer:
            return self.operation(node)
        return self.wrapped(node, kind)

    def set_status(self, node: Node, outs, status: str):
        for i, t in enumerate(outs if isinstance(outs, (list, tuple)) else [outs]):
            self.status[node.output(i)] = status if _is_float(t) else "i"

    def replay(self, node: Node, same_scale: bool):
        """A node left as it is: a float / integer layer or operation, or a same-scale one."""
        args, kwargs = self.arguments(node, quantize=False)
        op = self.clone(self.plan.layers[node.key]) if node.is_layer else node.op
        outs = op(*args, **kwargs)
        floats = [r for r in node.inputs if self.graph.is_float(r)]
        quantized = same_scale and floats and all(self.state(r) == "q" for r in floats)
        self.set_status(node, outs, "q" if quantized else "f")
        return outs

    def output_only(self, node: Node):
        """A float layer that an annotated layer reads: computed in float, a range on its output."""
        args, kwargs = self.arguments(node, quantize=False)
        layer = self.clone(self.plan.layers[node.key])
        out = QuantizeWrapper(layer, quantize_config=OutputOnlyConfig(Default8BitQuantizeConfig()))(*args, **kwargs)
        self.set_status(node, out, "q")
        return out

    def operation(self, node: Node):
        """A quantized Keras operation: quantized inputs, the op, then a range on its output."""
        plan = self.plan
        accept_fused = plan.kinds[node.key] is Kind.RELU or _is_concat(plan, node)
        args, kwargs = self.arguments(node, quantize=True, accept_fused=accept_fused)
        out = _rewritten(node, args, kwargs) if node.key in plan.rewrite else node.op(*args, **kwargs)
        if node.key in plan.fused:
            self.set_status(node, out, "fused")
            return out
        fixed = plan.fixed.get(node.key)
        quantizer = Q.FixedRangeQuantizer.for_activation(fixed) if fixed else None
        out = QuantizeLayer(quantizer, name=f"quant_{node.name}")(out)
        self.set_status(node, out, "q")
        return out

    def wrapped(self, node: Node, kind: Kind):
        plan = self.plan
        accept_fused = kind is Kind.RELU or _is_concat(plan, node)
        args, kwargs = self.arguments(node, quantize=True, accept_fused=accept_fused)
        if kind in (Kind.ATTENTION, Kind.RECURRENT):
            _refuse_masks(plan.layers[node.key], args, node.name)
        bn = plan.folded.get(node.key)
        wrapper = QuantizeWrapper(
            self.clone(plan.layers[node.key]),
            batch_norm=self.clone(plan.layers[bn.key]) if bn is not None else None,
            # (None: the layer's own default, e.g. no range after an Embedding's GATHER)
            quantize_output=False if node.key in plan.fused else None if kind in (Kind.EMBEDDING, Kind.CUSTOM) else True,
            preserve_sparsity=self.preserve_sparsity and kind is Kind.KERNEL,
            preserve_clusters=self.preserve_clusters and kind is Kind.KERNEL,
            quantize_config=plan.configs.get(node.key),
            name=f"quant_{plan.layers[node.key].name}" if node.index == 0 else None,
        )
        out = wrapper(*args, **kwargs)
        self.set_status(node, out, "fused" if node.key in plan.fused else "q")
        return out


def _refuse_masks(layer, args, name):
    """Masks reach attention and recurrent layers attached to their inputs, not as arguments.

    Keras keeps a tensor's mask in ``_keras_mask`` and has no public accessor
    for it (its own ``Layer.__call__`` reads the attribute the same way).
    """
    if any(getattr(t, "_keras_mask", None) is not None for t in keras.tree.flatten(args)):
        raise QuantizationError(
            f"layer '{layer.name}' ({type(layer).__name__}) cannot be quantized: its input carries a Keras mask "
            "(from an Embedding with mask_zero=True or a Masking layer), which its QAT simulation does not apply; "
            f"leave it in float with quantize_model(..., float_layers=['{name}'])"
        )


def _is_float(t) -> bool:
    return "float" in keras.backend.standardize_dtype(t.dtype)


def _rewritten(node: Node, args, kwargs):
    """-x as x * -1, x**2 as x * x, x / c as x * (1 / c): ops with int8 kernels."""
    name = node.class_name
    if name == "Negative":
        return ops.multiply(args[0], -1.0)
    if name == "Square":
        return ops.multiply(args[0], args[0])
    return ops.multiply(args[0], 1.0 / args[1])


def rebuild(graph: Graph, plan: Plan, *, preserve_sparsity: bool, name: str, preserve_clusters: bool = False):
    """Step 5: the QAT model (its own copy of every layer)."""
    return graph.rebuild(_Builder(graph, plan, preserve_sparsity, preserve_clusters), name=name)


def quantize_graph(model, *, annotated_only: bool, float_layers, preserve_sparsity: bool, preserve_clusters=False):
    """Steps 1-5 on a Sequential or Functional ``model``."""
    graph = Graph(model)
    plan = select(graph, annotated_only=annotated_only, float_layers=set(float_layers), model_name=model.name)
    classify(graph, plan)
    fold_batch_norms(graph, plan)
    fuse(graph, plan)
    return rebuild(
        graph, plan, preserve_sparsity=preserve_sparsity, name=model.name, preserve_clusters=preserve_clusters
    )
