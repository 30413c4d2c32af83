"""One reader of a Keras 3 model's layer graph, for every rewrite that walks it.

Keras serializes a Sequential or Functional model as public config data: a
list of operations, each with the calls ("inbound nodes") that fed it, whose
tensor arguments name the producing operation, call and output
(``keras_history``). :class:`Graph` turns that config into a flat list of
:class:`Node` objects in execution order, each holding the live operation
(a layer, or a Keras operation such as the ``x + 3.0`` inside MobileNetV3's
hard-sigmoid, which has no entry in ``model.layers``), its arguments with
every tensor replaced by a :class:`TensorRef`, and the list of tensors it
reads.

Nested models (a Sequential or Functional used as a layer, such as the stem
of ConvNeXt) are inlined: their layers become nodes of the outer graph, their
input layers become identity nodes (``Node.alias``) that forward the outer
tensor, and a reference to a nested model's output points at the inner layer
that produced it. ``Node.scope`` lists the nested models a node sits in, and
``Node.entry`` is its config entry inside :attr:`Graph.config` (edit it, then
``type(model).from_config(graph.config)`` rebuilds the edited model, nesting
included).

:meth:`Graph.rebuild` replays the graph with a function of your choice per
node (quantization wraps layers; others copy them), and returns the new
Functional model.

Example:
    >>> import keras
    >>> from keras_compress.graph import Graph
    >>> inp = keras.Input((4, 4, 3))
    >>> x = keras.layers.Conv2D(2, 1, name="c")(inp)
    >>> y = keras.layers.ReLU(6.0, name="r")(x + 3.0)   # `x + 3.0` is an operation, not a layer
    >>> g = Graph(keras.Model(inp, y * (1.0 / 6.0)))
    >>> [(n.class_name, n.is_layer) for n in g.nodes]
    [('InputLayer', True), ('Conv2D', True), ('Add', False), ('ReLU', True), ('Multiply', False)]
    >>> [n.class_name for n in g.consumers(g.node("c").output())]
    ['Add']
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import keras

from keras_compress.errors import GraphError

__all__ = [
    "Graph",
    "Node",
    "TensorRef",
    "as_functional",
    "clone_layer",
    "clone_model",
    "copy_model",
    "is_functional",
    "is_nested_model",
    "substitute",
    "tensor_refs",
]


class TensorRef(NamedTuple):
    """One tensor of the graph: output ``index`` of call ``node`` of operation ``name``."""

    name: str
    node: int
    index: int


@dataclass(eq=False)
class Node:
    """One call of one operation.

    Attributes:
        name: the operation's name in the flat graph (its own name unless two
            nested models use the same one, then ``"outer/inner"``).
        index: which call of that operation (0 for an operation called once).
        op: the live layer or Keras operation (None for a synthetic input).
        entry: the operation's config entry (inside :attr:`Graph.config`).
        args / kwargs: the call's arguments, tensors as :class:`TensorRef`.
        inputs: every tensor the call reads, in argument order.
        scope: names of the nested models the operation sits in, outermost first.
        alias: for the input layer of a nested model: the outer tensor it forwards.
    """

    name: str
    index: int
    op: Any
    entry: dict
    args: Any = ()
    kwargs: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    scope: tuple = ()
    alias: TensorRef | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.index)

    @property
    def class_name(self) -> str:
        return self.entry.get("class_name", type(self.op).__name__)

    @property
    def is_layer(self) -> bool:
        return isinstance(self.op, keras.layers.Layer)

    @property
    def is_input(self) -> bool:
        """A model input (top level), not the forwarding input of a nested model."""
        return self.class_name == "InputLayer" and self.alias is None

    def output(self, index: int = 0) -> TensorRef:
        return TensorRef(self.name, self.index, index)

    def describe(self) -> str:
        """``'name' (Class)`` for messages, with the nested models it sits in."""
        where = f" in '{'/'.join(self.scope)}'" if self.scope else ""
        label = self.op.name if getattr(self.op, "name", None) else self.name
        return f"'{label}' ({type(self.op).__name__ if self.op is not None else self.class_name}){where}"


def is_nested_model(layer) -> bool:
    """A Sequential or Functional model used as a layer (its graph can be inlined)."""
    return isinstance(layer, keras.Sequential) or (isinstance(layer, keras.Model) and is_functional(layer))


def is_functional(model) -> bool:
    """True for a Functional model (a graph of layers), False for Sequential or subclassed ones.

    Example:
        >>> import keras
        >>> inp = keras.Input((2,))
        >>> is_functional(keras.Model(inp, keras.layers.Dense(1)(inp)))
        True
        >>> is_functional(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
        False
    """
    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential):
        return False
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, ValueError, AttributeError, KeyError):  # subclassed models
        return False
    return isinstance(config, dict) and "layers" in config and "input_layers" in config


def _models(model):
    yield model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _models(layer)


def clone_model(model, clone_function=None):
    """``keras.models.clone_model(model, clone_function, recursive=True)``, uncompiled, inputs keeping their names.

    Keras 3.15 compiles the clone of a compiled model (with a new optimizer of
    the same class) and names a Functional clone's inputs after its input
    tensors; neither is what a copy should do. There is no public way to
    clone uncompiled, so the sources are marked uncompiled (a public
    attribute) while they are cloned.
    """
    kwargs = {}
    if is_functional(model):
        names = {id(l.output): l.name for l in model.layers if isinstance(l, keras.layers.InputLayer)}
        kwargs["input_tensors"] = keras.tree.map_structure(
            lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, name=names.get(id(x), x.name)), model.input
        )
    states = [(m, m.compiled) for m in _models(model)]
    try:
        for m, _ in states:
            m.compiled = False
        return keras.models.clone_model(model, clone_function=clone_function, recursive=True, **kwargs)
    finally:
        for m, compiled in states:
            m.compiled = compiled


def copy_model(model):
    """An independent, uncompiled copy of a Sequential or Functional model (nested ones too), weights copied.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> m.compile("adam", "mse")
        >>> c = copy_model(m)
        >>> c.compiled, c.layers[0] is m.layers[0]
        (False, False)
    """
    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def clone_layer(layer):
    """A new layer with ``layer``'s config, built as it was and holding a copy of its weights.

    The route Keras uses to load a saved model (``from_config``,
    ``build_from_config``, then the weights). A layer whose config cannot be
    read back (a custom layer without ``get_config``) is returned itself when
    it has no weights to copy.
    """
    # The classes at hand, in case a custom one is not registered for deserialization.
    classes = {type(x).__name__: type(x) for x in (layer, getattr(layer, "layer", None)) if x is not None}
    try:
        # safe_mode=False: the config is this process's own in-memory layer (a Lambda's
        # Python function included), not an artifact from elsewhere.
        fresh = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer), custom_objects=classes, safe_mode=False
        )
    except (TypeError, ValueError, NotImplementedError) as e:
        if layer.weights:
            raise GraphError(
                f"layer '{layer.name}' ({type(layer).__name__}) cannot be copied from its config ({e}); "
                "give it get_config() / from_config() (and register it with keras.saving.register_keras_serializable)"
            ) from e
        return layer
    build_config = layer.get_build_config() if layer.built else None
    if build_config and not fresh.built:  # (deserializing may have built it already)
        fresh.build_from_config(build_config)
    if layer.weights:
        fresh.set_weights(layer.get_weights())
    return fresh


def as_functional(model, error=GraphError):
    """``model`` itself if Functional, a Functional copy sharing the layers if Sequential.

    Raises ``error`` for anything else (a subclassed model, a model without inputs).
    """
    if not isinstance(model, keras.Model):
        raise error(f"expected a keras.Model, found {type(model).__name__}")
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise error(
            f"model '{model.name}' has no defined inputs: build it with keras.Input (or call it on data) first"
        )
    if isinstance(model, keras.Sequential):
        x = new_in = keras.Input(batch_shape=tuple(inputs[0].shape), dtype=inputs[0].dtype, name=f"{model.name}_input")
        for layer in model.layers:
            x = layer(x)
        return keras.Model(new_in, x, name=model.name)
    if not is_functional(model):
        raise error(f"model '{model.name}' ({type(model).__name__}) is subclassed: expected a Sequential or Functional model")
    return model


def _is_tensor_config(obj) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


# Non-tensor call arguments that Keras serializes as tagged dicts (slices of `x[:, 0]`, arrays...).
_TAGGED = ("__slice__", "__ellipsis__", "__numpy__", "__bytes__", "__tensor__", "__typespec__", "__lambda__")


def substitute(obj, fn: Callable[[TensorRef], Any]):
    """``obj`` (nested lists / tuples / dicts) with every :class:`TensorRef` replaced by ``fn(ref)``."""
    if isinstance(obj, TensorRef):
        return fn(obj)
    if isinstance(obj, list):
        return [substitute(o, fn) for o in obj]
    if isinstance(obj, tuple):
        return tuple(substitute(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: substitute(v, fn) for k, v in obj.items()}
    return obj


def tensor_refs(obj) -> list[TensorRef]:
    """Every :class:`TensorRef` in ``obj``, in order."""
    out: list[TensorRef] = []
    substitute(obj, lambda r: out.append(r) or r)
    return out


def _triples(spec) -> tuple[list[tuple], bool]:
    """``input_layers`` / ``output_layers`` of a config -> list of triples, and whether it was a single one."""
    if isinstance(spec, (list, tuple)) and len(spec) == 3 and isinstance(spec[0], str) and isinstance(spec[1], int):
        return [tuple(spec)], True
    if isinstance(spec, dict):
        spec = list(spec.values())
    out = []
    for item in spec:
        out.extend(_triples(item)[0])
    return out, False


class _Reader:
    """Walks a (nested) model config, producing flat nodes."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.dtypes: dict[TensorRef, str] = {}
        self.shapes: dict[TensorRef, tuple] = {}
        self.used: set[str] = set()

    def flat_name(self, name: str, scope: tuple) -> str:
        flat = name if name not in self.used else "/".join(scope + (name,))
        self.used.add(flat)
        return flat

    def read(self, model, config: dict, scope: tuple, outer_inputs: list | None) -> list[TensorRef]:
        """Adds the nodes of one model; returns its output refs (flat)."""
        if isinstance(model, keras.Sequential):
            return self.read_sequential(model, config, scope, outer_inputs)
        return self.read_functional(model, config, scope, outer_inputs)

    def read_sequential(self, model, config, scope, outer_inputs):
        live = {layer.name: layer for layer in model.layers}
        prev = outer_inputs[0] if outer_inputs else None
        for entry in config["layers"]:
            name = entry["config"]["name"]
            if entry["class_name"] == "InputLayer":
                prev = self.add_input(entry, name, scope, prev, None).output()
                continue
            prev = self.add_call(live[name], entry, name, scope, [prev], {}, 0, None)[0]
            self.record(prev, live[name])
        return [prev]

    def record(self, ref: TensorRef, layer) -> None:
        """Shape and dtype of a Sequential layer's output (its config has no tensors to read them from)."""
        try:
            out = layer.output
        except (AttributeError, ValueError):  # never called, or called more than once
            return
        if not isinstance(out, (list, tuple)):
            self.shapes.setdefault(ref, tuple(out.shape))
            self.dtypes.setdefault(ref, keras.backend.standardize_dtype(out.dtype))

    def read_functional(self, model, config, scope, outer_inputs):
        live = {op.name: op for op in model.operations}
        local: dict[str, str] = {}  # name in this config -> flat name
        alias: dict[tuple, TensorRef] = {}  # (name, node, index) of a nested model's output -> flat ref
        ins, _ = _triples(config["input_layers"])
        in_pos = {t[0]: i for i, t in enumerate(ins)}
        for entry in config["layers"]:
            name = entry.get("name", entry["config"]["name"])
            if entry["class_name"] == "InputLayer":
                outer = outer_inputs[in_pos[name]] if outer_inputs is not None else None
                local[name] = self.add_input(entry, name, scope, outer, live.get(name)).name
                continue
            flat = None if is_nested_model(live[name]) else self.flat_name(name, scope)
            local[name] = flat or name
            for n, call in enumerate(entry["inbound_nodes"]):
                args = self.resolve(call.get("args", ()), local, alias)
                kwargs = self.resolve(call.get("kwargs", {}), local, alias)
                outs = self.add_call(live[name], entry, name, scope, args, kwargs, n, flat)
                if flat is None:
                    alias.update({(name, n, i): ref for i, ref in enumerate(outs)})
        outs, _ = _triples(config["output_layers"])
        return [alias.get(tuple(o)) or TensorRef(local[o[0]], o[1], o[2]) for o in outs]

    def resolve(self, obj, local, alias):
        if _is_tensor_config(obj):
            name, node, index = obj["config"]["keras_history"]
            ref = alias.get((name, node, index)) or TensorRef(local[name], node, index)
            self.dtypes.setdefault(ref, obj["config"].get("dtype"))
            self.shapes.setdefault(ref, tuple(obj["config"].get("shape") or ()))
            return ref
        if isinstance(obj, dict) and obj.get("class_name") in _TAGGED:
            return keras.saving.deserialize_keras_object(obj)
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.resolve(o, local, alias) for o in obj)
        if isinstance(obj, dict):
            return {k: self.resolve(v, local, alias) for k, v in obj.items()}
        return obj

    def add_input(self, entry, name, scope, outer: TensorRef | None, op) -> Node:
        node = Node(self.flat_name(name, scope), 0, op, entry, scope=scope, alias=outer)
        if outer is not None:
            node.args, node.inputs = [outer], [outer]
        cfg = entry["config"]
        self.dtypes[node.output()] = cfg.get("dtype", "float32")
        self.shapes[node.output()] = tuple(cfg.get("batch_shape") or ())
        self.nodes.append(node)
        return node

    def add_call(self, op, entry, name, scope, args, kwargs, n, flat) -> list[TensorRef]:
        if is_nested_model(op):
            # Inline the nested model; its n-th call gets its own copy of the inner nodes'
            # keys only when it is called several times (then its layers are shared).
            return self.read(op, entry["config"], scope + (op.name,), tensor_refs(args))
        flat = flat or self.flat_name(name, scope)
        node = Node(flat, n, op, entry, args, kwargs, tensor_refs((args, kwargs)), scope)
        self.nodes.append(node)
        return [node.output()]


class Graph:
    """The flat graph of a Sequential or Functional model (see the module docstring).

    Args:
        model: a built Sequential or Functional model.

    Raises:
        GraphError: a subclassed model, or a model without defined inputs.
    """

    def __init__(self, model):
        if not isinstance(model, keras.Model) or not (isinstance(model, keras.Sequential) or is_functional(model)):
            raise GraphError(
                f"model '{getattr(model, 'name', model)}' ({type(model).__name__}): expected a Sequential or "
                "Functional model (a subclassed model has no layer graph to read)"
            )
        if isinstance(model, keras.Sequential) and not model.built:
            raise GraphError(f"model '{model.name}' has no defined inputs: build it with keras.Input (or call it on data) first")
        self.model = model
        self.config = copy.deepcopy(model.get_config())
        reader = _Reader()
        outputs = reader.read(model, self.config, (), None)
        self.nodes = _topological(reader.nodes)
        self.dtypes, self.shapes = reader.dtypes, reader.shapes
        if isinstance(model, keras.Sequential):
            self.outputs, self.single_output, self.single_input = outputs, True, True
        else:
            self.outputs = outputs
            self.single_output = _triples(self.config["output_layers"])[1]
            self.single_input = _triples(self.config["input_layers"])[1]
        self.inputs = [n.output() for n in self.nodes if n.is_input]
        self._by_key = {n.key: n for n in self.nodes}
        self._consumers: dict[TensorRef, list[Node]] = defaultdict(list)
        for n in self.nodes:
            for ref in dict.fromkeys(n.inputs):
                self._consumers[ref].append(n)

    # ----------------------------------------------------------------- lookups
    def node(self, name: str, index: int = 0) -> Node:
        try:
            return self._by_key[(name, index)]
        except KeyError:
            raise GraphError(f"model '{self.model.name}' has no operation '{name}' (call {index})") from None

    def producer(self, ref: TensorRef) -> Node:
        return self._by_key[(ref.name, ref.node)]

    def calls(self, name: str) -> list[Node]:
        """Every node of operation ``name`` (more than one when the layer is shared)."""
        return [n for n in self.nodes if n.name == name]

    def shared(self, node: Node) -> bool:
        """True when ``node``'s operation is called more than once (a shared layer, or a nested model used twice)."""
        return sum(1 for n in self.nodes if n.op is node.op) > 1

    def consumers(self, ref: TensorRef) -> list[Node]:
        """Nodes that read tensor ``ref`` (in execution order)."""
        return list(self._consumers.get(ref, ()))

    def consumers_of(self, node: Node) -> list[Node]:
        """Nodes that read any output of ``node``."""
        out = []
        for ref, users in self._consumers.items():
            if ref.name == node.name and ref.node == node.index:
                out.extend(u for u in users if u not in out)
        return out

    def is_output(self, ref: TensorRef) -> bool:
        return ref in self.outputs

    def dtype(self, ref: TensorRef) -> str:
        return self.dtypes.get(ref) or "float32"

    def is_float(self, ref: TensorRef) -> bool:
        return "float" in str(self.dtype(ref))

    def locate(self, model, node: Node):
        """The layer of ``model`` (same architecture, e.g. rebuilt from :attr:`config`) at ``node``'s place."""
        owner = model
        for name in node.scope:
            owner = owner.get_layer(name)
        return owner.get_layer(node.op.name if node.op is not None else node.name)

    # ----------------------------------------------------------------- rebuild
    def rebuild(self, call: Callable[[Node, dict], Any], *, input_names: dict | None = None, name: str | None = None):
        """Replays the graph: ``call(node, tensors)`` returns the node's new output tensor(s).

        ``tensors`` maps every :class:`TensorRef` already computed to its new
        Keras tensor. Input nodes become ``keras.Input`` of the same shape,
        dtype and name (or ``input_names[name]``); nested models' input nodes
        forward their tensor.
        """
        tensors: dict[TensorRef, Any] = {}
        new_inputs = {}
        for node in self.nodes:
            if node.is_input:
                cfg = node.entry["config"]
                tensors[node.output()] = new_inputs[node.name] = keras.Input(
                    batch_shape=tuple(cfg["batch_shape"]),
                    dtype=cfg.get("dtype", "float32"),
                    name=(input_names or {}).get(node.name, node.name),
                )
                continue
            if node.alias is not None:
                tensors[node.output()] = tensors[node.alias]
                continue
            outs = call(node, tensors)
            for i, t in enumerate(outs if isinstance(outs, (list, tuple)) else [outs]):
                tensors[node.output(i)] = t
        ins = [new_inputs[r.name] for r in self.inputs]
        outs = [tensors[r] for r in self.outputs]
        return keras.Model(
            ins[0] if self.single_input else ins, outs[0] if self.single_output else outs, name=name or self.model.name
        )


def _topological(nodes: list[Node]) -> list[Node]:
    """Execution order, stable with respect to the config order (shared layers' later calls may come later)."""
    keys = {n.key for n in nodes}
    done: set = set()
    order: list[Node] = []
    pending = list(nodes)
    while pending:
        remaining = []
        for n in pending:
            deps = {(r.name, r.node) for r in n.inputs} & keys
            if deps <= done:
                order.append(n)
                done.add(n.key)
            else:
                remaining.append(n)
        if len(remaining) == len(pending):
            raise GraphError(f"the graph has a cycle or a dangling reference at {', '.join(n.name for n in remaining[:5])}")
        pending = remaining
    return order
