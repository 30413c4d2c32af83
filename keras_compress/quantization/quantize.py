"""`quantize_model`, `quantize_annotate_layer`, `quantize_apply`: the QAT entry points.

The names and the flow are tfmot's::

    qat = quantize_model(float_model)                 # every layer
    # or: annotate some layers while building the model, then
    qat = quantize_apply(annotated_model)             # only those

The result is a new Functional model (its own copy of the weights) whose
layers simulate int8 as the TFLite kernels compute it. Train it with plain
``model.fit``, save it as ``.keras``, and convert it with
``keras_compress.convert.to_tflite(qat, quantization="int8")``: no
representative data is needed, the ranges come from training.

The model graph is read from its (public) Functional config, and rebuilt by
calling the copied layers again, with these rewrites:

- Conv2D / DepthwiseConv2D followed only by a BatchNormalization: one
  :class:`~keras_compress.quantization.wrapper.QuantizeWrapper` with the
  BatchNormalization folded in (the BatchNormalization disappears).
- a producer whose only consumer is a ReLU / ReLU6: no range on the producer's
  output (TFLite fuses the ReLU into it); the ReLU gets the range. Likewise a
  producer that feeds only a Concatenate takes the Concatenate's range (TFLite
  wants one scale on all its inputs and its output).
- a quantized layer fed by a float tensor (a model input, or a layer left in
  float): a :class:`~keras_compress.quantization.wrapper.QuantizeLayer` in between.
- same-scale layers (pooling by max, reshape, flatten, padding, dropout...)
  are kept as they are: TFLite gives them their input's scale.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import keras

from keras_compress.errors import QuantizationError
from keras_compress.quantization import registry
from keras_compress.quantization.registry import Kind
from keras_compress.quantization.wrapper import (
    QuantizeAnnotate,
    QuantizeLayer,
    QuantizeWrapper,
)

__all__ = ["quantize_annotate_layer", "quantize_annotate_model", "quantize_apply", "quantize_model", "quantize_scope"]

_L = keras.layers


def quantize_scope(*args):
    """Custom objects for loading a QAT model (they are registered; kept for tfmot parity).

    Example:
        >>> sorted(quantize_scope())[:3]
        ['FixedRangeQuantizer', 'LastValueQuantizer', 'MovingAverageQuantizer']
    """
    from keras_compress.quantization import quantizers as Q

    objects = {
        "QuantizeAnnotate": QuantizeAnnotate,
        "QuantizeLayer": QuantizeLayer,
        "QuantizeWrapper": QuantizeWrapper,
        "LastValueQuantizer": Q.LastValueQuantizer,
        "MovingAverageQuantizer": Q.MovingAverageQuantizer,
        "FixedRangeQuantizer": Q.FixedRangeQuantizer,
    }
    for extra in args:
        objects.update(extra)
    return objects


def quantize_annotate_layer(to_annotate, quantize_config=None):
    """Marks one layer for quantization by :func:`quantize_apply`.

    Args:
        to_annotate: a Keras layer (not yet called), used in place of the layer
            when building the model.
        quantize_config: not supported (the default int8 scheme is used); must be None.

    Returns:
        A :class:`QuantizeAnnotate` wrapping the layer.

    Example:
        >>> import keras
        >>> from keras_compress.quantization import quantize_annotate_layer, quantize_apply
        >>> inp = keras.Input((8, 8, 1))
        >>> x = quantize_annotate_layer(keras.layers.Conv2D(4, 3))(inp)
        >>> x = keras.layers.Flatten()(x)
        >>> out = keras.layers.Dense(2)(x)  # stays float
        >>> qat = quantize_apply(keras.Model(inp, out))
        >>> [type(l).__name__ for l in qat.layers][1:3]
        ['QuantizeLayer', 'QuantizeWrapper']
    """
    if quantize_config is not None:
        raise QuantizationError(
            f"quantize_annotate_layer: custom quantize_config is not supported, expected None, found {type(quantize_config).__name__}"
        )
    if not isinstance(to_annotate, keras.layers.Layer) or isinstance(to_annotate, keras.Model):
        raise QuantizationError(
            f"quantize_annotate_layer: expected a keras layer, found {type(to_annotate).__name__}"
        )
    if isinstance(to_annotate, QuantizeAnnotate):
        return to_annotate
    return QuantizeAnnotate(to_annotate)


def quantize_annotate_model(to_annotate):
    """Annotates every layer of a model (what :func:`quantize_model` quantizes)."""
    model = _as_functional(to_annotate)
    return keras.models.clone_model(
        model, clone_function=lambda l: l if isinstance(l, (_L.InputLayer, QuantizeAnnotate)) else QuantizeAnnotate(l)
    )


def quantize_model(
    to_quantize,
    *,
    float_layers: Iterable[str] = (),
    preserve_sparsity: bool = False,
):
    """Makes a quantization-aware copy of a Keras 3 model (int8 TFLite scheme).

    Args:
        to_quantize: a built Sequential or Functional model (float, pruned-and
            stripped, or still wrapped by ``prune_low_magnitude``).
        float_layers: names of layers to leave in float; use it for layers
            this scheme cannot quantize. ``to_tflite`` then needs
            ``representative_data`` to calibrate the ranges around them.
        preserve_sparsity: keep every kernel's zeros exactly zero during QAT
            (pruning-preserving QAT: prune, strip, then quantize).

    Returns:
        A new Functional model with its own copy of the weights.

    Raises:
        QuantizationError: a layer that cannot be quantized (its name and type
            are in the message), an unknown name in ``float_layers``, or a model
            without known inputs.

    Example:
        >>> import keras
        >>> from keras_compress.quantization import quantize_model
        >>> m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
        ...                       keras.layers.BatchNormalization(), keras.layers.ReLU(),
        ...                       keras.layers.Flatten(), keras.layers.Dense(2)])
        >>> [type(l).__name__ for l in quantize_model(m).layers]
        ['InputLayer', 'QuantizeLayer', 'QuantizeWrapper', 'QuantizeWrapper', 'Flatten', 'QuantizeWrapper']
    """
    return _quantize(to_quantize, annotated_only=False, float_layers=set(float_layers), preserve_sparsity=preserve_sparsity)


def quantize_apply(model, *, float_layers: Iterable[str] = (), preserve_sparsity: bool = False):
    """Quantizes the layers annotated with :func:`quantize_annotate_layer`; the rest stays float.

    With no annotated layer at all, every layer is quantized (as
    :func:`quantize_model`). Arguments as :func:`quantize_model`.
    """
    return _quantize(model, annotated_only=True, float_layers=set(float_layers), preserve_sparsity=preserve_sparsity)


# ---------------------------------------------------------------------- graph


def _as_functional(model):
    if not isinstance(model, keras.Model):
        raise QuantizationError(f"expected a keras.Model, found {type(model).__name__}")
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise QuantizationError(
            f"model '{model.name}' has no defined inputs: build it with keras.Input (or call it on data) before quantizing"
        )
    if isinstance(model, keras.Sequential):
        x = new_in = keras.Input(batch_shape=tuple(inputs[0].shape), dtype=inputs[0].dtype, name=f"{model.name}_input")
        for layer in model.layers:
            x = layer(x)
        return keras.Model(new_in, x, name=model.name)
    if type(model) is not keras.Model and not _is_functional(model):
        raise QuantizationError(
            f"model '{model.name}' ({type(model).__name__}) is subclassed: expected a Sequential or Functional model"
        )
    return model


def _is_functional(model) -> bool:
    try:
        cfg = model.get_config()
    except Exception:
        return False
    return isinstance(cfg, dict) and "layers" in cfg and "input_layers" in cfg


def _copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _is_tensor_ref(obj) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


def _refs(obj):
    """All (layer, node, index) triples referenced in a node's args/kwargs."""
    if _is_tensor_ref(obj):
        name, node, idx = obj["config"]["keras_history"]
        yield (name, node, idx)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _refs(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _refs(item)


def _substitute(obj, fn):
    if _is_tensor_ref(obj):
        name, node, idx = obj["config"]["keras_history"]
        return fn((name, node, idx))
    if isinstance(obj, list):
        return [_substitute(o, fn) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_substitute(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _substitute(v, fn) for k, v in obj.items()}
    return obj


def _triples(spec):
    """``input_layers`` / ``output_layers`` of a config -> list of triples, and whether it was a single one."""
    if isinstance(spec, (list, tuple)) and len(spec) == 3 and isinstance(spec[0], str):
        return [tuple(spec)], True
    out = []
    for item in spec:
        sub, _ = _triples(item)
        out.extend(sub)
    return out, False


def _quantize(model, *, annotated_only, float_layers, preserve_sparsity):
    functional = _as_functional(model)
    copy = _copy(functional)
    # clone_model renames input layers after their tensors: keep the original names.
    input_names = dict(
        zip(
            [l.name for l in copy.layers if isinstance(l, _L.InputLayer)],
            [l.name for l in functional.layers if isinstance(l, _L.InputLayer)],
        )
    )
    config = copy.get_config()
    layers = {layer.name: layer for layer in copy.layers}
    unknown = sorted(set(float_layers) - set(layers) - {_unannotated_name(l) for l in layers.values()})
    if unknown:
        raise QuantizationError(
            f"float_layers: no layer named {', '.join(map(repr, unknown))} in model '{model.name}' "
            f"(its layers: {', '.join(sorted(layers))})"
        )

    any_annotated = any(isinstance(l, QuantizeAnnotate) for l in layers.values())
    annotated_only = annotated_only and any_annotated

    # Unwrap annotations: name -> (layer to use, whether to quantize).
    real, wanted = {}, {}
    for name, layer in layers.items():
        if isinstance(layer, QuantizeAnnotate):
            real[name], wanted[name] = layer.layer, True
        else:
            real[name], wanted[name] = layer, not annotated_only
        if real[name].name in float_layers or name in float_layers:
            wanted[name] = False
        if isinstance(layer, _L.InputLayer):
            wanted[name] = False

    kinds = {}
    for name, layer in real.items():
        if not wanted[name]:
            continue
        kind = registry.kind_of(layer)
        if kind is None:
            raise QuantizationError(
                f"layer '{layer.name}' ({type(layer).__name__}) cannot be quantized: {registry.unquantizable_reason(layer)}; "
                f"leave it in float with quantize_model(..., float_layers=['{layer.name}'])"
            )
        kinds[name] = kind

    entries = config["layers"]
    consumers = defaultdict(list)  # (layer, node) -> [(consumer layer, node)]
    node_count = {}
    for entry in entries:
        node_count[entry["name"]] = len(entry["inbound_nodes"])
        for n, node in enumerate(entry["inbound_nodes"]):
            for ref in _refs(node):
                consumers[(ref[0], ref[1])].append((entry["name"], n))
    outputs, single_output = _triples(config["output_layers"])
    for ref in outputs:
        consumers[(ref[0], ref[1])].append(("<output>", 0))

    def sole_consumer(name, node=0):
        c = consumers[(name, node)]
        return c[0][0] if len(c) == 1 and c[0][0] in real and node_count.get(c[0][0]) == 1 else None

    # Conv + BatchNorm folding.
    folded = {}  # conv name -> bn name
    for name, kind in kinds.items():
        if kind is not Kind.KERNEL or node_count[name] != 1:
            continue
        k = registry.kernel_layer(real[name])
        if not isinstance(k, (_L.Conv2D, _L.DepthwiseConv2D)) or registry.activation_name(k.activation) not in ("linear", None):
            continue
        nxt = sole_consumer(name)
        if nxt is not None and kinds.get(nxt) is Kind.OUTPUT and isinstance(real[nxt], _L.BatchNormalization):
            if real[nxt].axis in (-1, 3):  # channels of the 4-D conv output
                folded[name] = nxt
    bn_of = {bn: conv for conv, bn in folded.items()}

    # ReLU fusion: the producer whose sole consumer is a ReLU gets no output range.
    fused = set()
    for name, kind in kinds.items():
        if kind not in (Kind.KERNEL, Kind.OUTPUT) or name in bn_of or node_count[name] != 1:
            continue
        last = folded.get(name, name)
        nxt = sole_consumer(last)
        if nxt is not None and kinds.get(nxt) is Kind.RELU:
            k = registry.kernel_layer(real[name])
            if k is not None and registry.activation_name(k.activation) not in ("linear", None):
                continue
            fused.add(name)

    # Concatenate: TFLite gives its inputs and output one scale, so a producer
    # that feeds only the concatenation takes the concatenation's range.
    for name, kind in kinds.items():
        if kind not in (Kind.KERNEL, Kind.OUTPUT, Kind.RELU) or name in bn_of or node_count[name] != 1:
            continue
        nxt = sole_consumer(folded.get(name, name))
        if nxt is not None and kinds.get(nxt) is Kind.OUTPUT and isinstance(real[nxt], _L.Concatenate):
            fused.add(name)

    tensors = {}  # (name, node, index) -> new KerasTensor
    status = {}  # (name, node, index) -> "q" (has a range), "fused" (a ReLU follows), "f" (float)
    quantized_input = {}
    new_inputs = []
    fresh_layers = {}

    def ensure_quantized(ref):
        if status[ref] in ("q", "fused"):
            return tensors[ref]
        if ref not in quantized_input:
            base = input_names.get(ref[0], ref[0])
            quantized_input[ref] = QuantizeLayer(name=f"quantize_{base}" if ref[1] == 0 and ref[2] == 0 else None)(tensors[ref])
        return quantized_input[ref]

    inputs_spec, single_input = _triples(config["input_layers"])
    pending = list(entries)
    progress = True
    while pending and progress:
        progress = False
        remaining = []
        for entry in pending:
            name = entry["name"]
            nodes = entry["inbound_nodes"]
            if name in bn_of:
                progress = True
                continue  # produced together with its conv
            needed = [ref for node in nodes for ref in _refs(node)]
            if any(ref not in tensors for ref in needed):
                remaining.append(entry)
                continue
            progress = True
            layer = real[name]
            if isinstance(layer, _L.InputLayer):
                t = copy.get_layer(name).output
                new_in = keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=input_names.get(name, name))
                new_inputs.append((name, new_in))
                tensors[(name, 0, 0)] = new_in
                status[(name, 0, 0)] = "f"
                continue
            kind = kinds.get(name)
            for n, node in enumerate(nodes):
                if kind is None or kind is Kind.PASSTHROUGH:
                    refs = list(_refs(node))
                    args = _substitute(node["args"], lambda r: tensors[r])
                    kwargs = _substitute(node["kwargs"], lambda r: tensors[r])
                    fresh = _fresh_copy(layer) if n == 0 else fresh_layers[name]
                    fresh_layers[name] = fresh
                    out = fresh(*args, **kwargs)
                    if n == 0 and layer.weights:
                        fresh.set_weights(layer.get_weights())
                    st = "f" if kind is None or not refs else ("q" if all(status[r] == "q" for r in refs) else "f")
                    out_name = name
                else:
                    if kind is Kind.RELU or isinstance(layer, _L.Concatenate):
                        conv = lambda r: tensors[r] if status[r] == "fused" else ensure_quantized(r)
                    else:
                        conv = ensure_quantized
                    args = _substitute(node["args"], conv)
                    kwargs = _substitute(node["kwargs"], conv)
                    kwargs.pop("training", None)
                    wrapper = QuantizeWrapper(
                        layer,
                        batch_norm=real[folded[name]] if name in folded else None,
                        quantize_output=name not in fused,
                        preserve_sparsity=preserve_sparsity and kind is Kind.KERNEL,
                        name=f"quant_{layer.name}" if n == 0 else None,
                    )
                    out = wrapper(*args, **kwargs)
                    st = "fused" if name in fused else "q"
                    out_name = folded.get(name, name)
                outs = out if isinstance(out, (list, tuple)) else [out]
                for i, t in enumerate(outs):
                    tensors[(out_name, n, i)] = t
                    status[(out_name, n, i)] = st
        pending = remaining
    if pending:
        raise QuantizationError(
            f"model '{model.name}': could not rebuild the graph at layer(s) {', '.join(e['name'] for e in pending)}"
        )

    order = {name: i for i, name in enumerate(ref[0] for ref in inputs_spec)}
    ins = [t for _, t in sorted(new_inputs, key=lambda p: order.get(p[0], 0))]
    outs = [tensors[tuple(ref)] for ref in outputs]
    qat = keras.Model(ins[0] if single_input else ins, outs[0] if single_output else outs, name=model.name)
    return qat


def _fresh_copy(layer):
    """A new layer with the same config (so the QAT model's graph owns all its layers' nodes)."""
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))


def _unannotated_name(layer):
    return layer.layer.name if isinstance(layer, QuantizeAnnotate) else layer.name
