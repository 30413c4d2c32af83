"""Latency cost model: per-layer milliseconds from one measured lookup table of this machine.

The model (CPU target, XNNPACK, full-int8 TFLite)::

    predicted_ms(model) = overhead_ms + scale * sum over layers of max(entry_ms(layer) - floor_ms, 0)

* ``entry_ms(layer)`` is the latency of a one-layer model (fastest per-round median): ``keras.Input``
  of the layer's input shape, then the layer re-created from its config (random
  weights: latency does not depend on their values), converted to full int8 with
  int8 input and output (so no QUANTIZE / DEQUANTIZE enters the entry) and timed
  through :func:`edgetpu.benchmark`. A layer is keyed by :func:`layer_signature`
  (class, the config fields that change its cost, input shape), so each distinct
  shape is measured once, whatever model or candidate it belongs to.
* ``floor_ms`` is the entry of the smallest model there is (one input value, one
  ``Dense(1)``): what every one-layer entry pays for ``invoke()`` itself. It is
  subtracted from each entry, so a model of N layers does not pay it N times.
* ``overhead_ms`` is the whole-model term (``invoke()``, the input QUANTIZE and
  output DEQUANTIZE of a float-I/O model, whatever is not in the per-layer sum)
  and ``scale`` corrects the sum for what a layer costs inside a model against
  alone. Uncalibrated: ``overhead = floor_ms``, ``scale = 1``.
  :meth:`LatencyTable.calibrate` fits one of them on one measured model (the
  baseline): ``mode="scale"`` (default) keeps ``overhead = floor_ms`` and sets
  ``scale = (measured - floor) / sum``; ``mode="offset"`` keeps ``scale = 1`` and
  sets ``overhead = measured - sum`` (``predict = overhead + sum``). ``scale``
  is the default because an excess of the per-layer sum that grows with the
  model (seen in a short bench run here: entries about 5% above the whole
  baseline, and ``offset`` then 18% under on the smallest variant, ``scale``
  within 9%) is proportional; in the latest full bench run (quiet machine)
  ``scale`` was within 1.0% on every variant, ``offset`` within 3.2%, the
  uncalibrated model within 2.2% (``bench/results/search_latency.md``).

Entries are measured with interleaved repeats: every missing entry once per
round (round-robin, the order rotating), several rounds, the entry's figure the
fastest of its per-round medians (:func:`_entry_ms` says why); the table is saved after every round, so an
interrupted :meth:`LatencyTable.measure` resumes where it stopped. A table file
holds one section per machine: the key is the CPU model, its int8-relevant ISA
features (:mod:`keras_compress.machine`), the architecture, the interpreter
package's version and the thread count, so a table from another machine or
another thread count is never used.

Layers without an entry: those that vanish on conversion (:data:`VANISHING`:
``InputLayer``, ``Dropout``, noise layers), a ``BatchNormalization`` the converter
folds into the Conv / Dense before it, and a ReLU / ReLU6 it fuses into that
layer (:data:`FOLDS_INTO`). Keras operations that are not layers (``x + y`` in
a Functional model) are listed as ``unmodeled`` in the prediction.

Known error sources: cache state differs (inside a model a layer reads the
output its predecessor just wrote; alone it re-reads the same input, warm);
XNNPACK plans one subgraph for the whole model, not one per layer, and may
elide a RESHAPE before FULLY_CONNECTED that the one-layer model keeps;
requantization scales differ (random weights), which changes no kernel but can
change XNNPACK's choice in rare cases; fusions other than the ones above are
not modelled; and every figure is a median on a machine shared with other
work, so noise of a few percent per entry adds up. The bench
(``bench/bench_search_latency.py``) reports the model's error against whole-model
measurements.

Edge TPU: there is no Edge TPU on the development machines. For the
``edgetpu`` target, :func:`edgetpu_latency_ms` is an *estimate* from MACs and
parameter bytes, never a measurement (see its docstring).

Example:
    >>> import keras
    >>> from keras_compress.search.latency import layer_signature
    >>> conv = keras.layers.Conv2D(8, 3, padding="same", name="a")
    >>> _ = keras.Sequential([keras.Input((16, 16, 4)), conv])
    >>> layer_signature(conv, [(16, 16, 4)]) == layer_signature(keras.layers.Conv2D(8, 3, padding="same", name="b"), [(16, 16, 4)])
    True
    >>> layer_signature(keras.layers.Dropout(0.5), [(4,)]) is None
    True
    >>> round(edgetpu_latency_ms(macs=300e6, param_bytes=3.5e6)["ms"], 2)
    2.12
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import keras
import numpy as np

from keras_compress.errors import ConversionError, LatencyTableError

__all__ = [
    "layer_signature",
    "LatencyTable",
    "LatencyPrediction",
    "LayerLatency",
    "measure_tflite",
    "edgetpu_latency_ms",
    "VANISHING",
    "FOLDS_INTO",
    "TABLE_FORMAT",
    "FLOOR",
    "EDGETPU_PEAK_TOPS",
    "EDGETPU_UTILIZATION",
    "EDGETPU_INVOKE_MS",
    "EDGETPU_CACHE_BYTES",
    "EDGETPU_STREAM_MB_PER_S",
]

#: The ``format`` field of a table file.
TABLE_FORMAT = "keras-compress-latency/1"
#: Layer classes that disappear on conversion (no op in the .tflite, no entry).
VANISHING = frozenset({
    "InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization",
})
#: Layers the converter folds a following BatchNormalization / ReLU into.
FOLDS_INTO = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                        "SeparableConv2D", "Dense"})
#: The signature of the floor entry (the smallest model: ``Input((1,))`` then ``Dense(1)``).
FLOOR = "__floor__"
_NOT_COST = {"name", "trainable", "dtype", "seed", "autocast"}
_NOT_COST_SUFFIX = ("_initializer", "_regularizer", "_constraint")
Progress = Callable[[str], None]


def _cost_config(layer) -> dict:
    """The layer's config without the fields that do not change its cost (name, initializers, ...)."""
    cfg = layer.get_config()
    return {k: v for k, v in cfg.items() if k not in _NOT_COST and not k.endswith(_NOT_COST_SUFFIX)}


def _input_shapes(layer) -> list[tuple]:
    try:
        tensors = keras.tree.flatten(layer.input)
    except (AttributeError, ValueError) as e:  # not called, or called at several places
        raise LatencyTableError(f"layer '{layer.name}': cannot read its input shape ({e}); pass input_shapes") from None
    return [tuple(t.shape[1:]) for t in tensors]


def layer_signature(layer, input_shapes: Iterable[Iterable[int | None]] | None = None) -> str | None:
    """A stable key for one layer as it runs: class, cost-relevant config, input shape(s) (batch dropped).

    The layer's name, initializers, regularizers and constraints are left out;
    everything else in ``get_config()`` (filters / units, kernel size, strides,
    padding, dilation, activation, use_bias, pool size, ...) is in.

    Args:
        layer: a Keras layer.
        input_shapes: one shape per input, without the batch dimension
            (default: read from the layer's single call, ``layer.input``).

    Returns:
        The key, or ``None`` for a layer that vanishes on conversion (:data:`VANISHING`).

    Raises:
        LatencyTableError: ``input_shapes`` not given and the layer has no single call,
            or a dimension is unknown.
    """
    cls = type(layer).__name__
    if cls in VANISHING:
        return None
    shapes = [tuple(s) for s in input_shapes] if input_shapes is not None else _input_shapes(layer)
    if any(d is None for s in shapes for d in s):
        raise LatencyTableError(f"layer '{layer.name}' ({cls}): input shape {shapes} has unknown dimensions; "
                                "latency needs fixed shapes", (layer.name,))
    name = keras.saving.get_registered_name(type(layer))
    cfg = json.dumps(_cost_config(layer), sort_keys=True, separators=(",", ":"), default=str)
    return f"{name}{cfg}@{json.dumps([list(s) for s in shapes], separators=(',', ':'))}"


@dataclass(frozen=True)
class _Item:
    """One layer call of a model: its name, class, signature (None: no entry) and why not."""

    name: str
    class_name: str
    signature: str | None
    layer: Any = None
    shapes: tuple = ()
    note: str = ""


def _fused(graph, node) -> str:
    """Name of the layer ``node`` (a BatchNormalization or ReLU) is folded into, or ''."""
    cls = node.class_name
    cfg = node.op.get_config()
    relu = (cls == "ReLU" and not cfg.get("negative_slope") and not cfg.get("threshold")
            and cfg.get("max_value") in (None, 6.0)) or (cls == "Activation" and cfg.get("activation") in ("relu", "relu6"))
    if cls != "BatchNormalization" and not relu or len(node.inputs) != 1:
        return ""
    prev = graph.producer(node.inputs[0])
    if not prev.is_layer or len(graph.consumers(node.inputs[0])) != 1:
        return ""
    if prev.class_name in FOLDS_INTO:
        activation = prev.op.get_config().get("activation", "linear")
        return prev.name if activation == "linear" else ""
    if relu and prev.class_name == "BatchNormalization" and _fused(graph, prev):
        return _fused(graph, prev)
    return ""


def _model_items(model) -> list[_Item]:
    """Every call in ``model``'s graph, in execution order, with its signature or the reason it has none."""
    from keras_compress.graph import Graph

    graph = Graph(model)
    items = []
    for node in graph.nodes:
        if not node.is_layer:
            items.append(_Item(node.name, node.class_name, None, note="unmodeled (not a layer)"))
            continue
        if node.is_input or node.alias is not None or node.class_name in VANISHING:
            items.append(_Item(node.name, node.class_name, None, note="vanishes on conversion"))
            continue
        into = _fused(graph, node)
        if into:
            items.append(_Item(node.name, node.class_name, None, note=f"folded into {into}"))
            continue
        shapes = tuple(tuple(graph.shapes[r][1:]) for r in node.inputs)
        items.append(_Item(node.name, node.class_name, layer_signature(node.op, shapes), node.op, shapes))
    return items


def _items(models_or_layers) -> list[_Item]:
    if isinstance(models_or_layers, keras.layers.Layer):
        models_or_layers = [models_or_layers]
    out = []
    for obj in models_or_layers:
        if isinstance(obj, keras.Model):
            out += _model_items(obj)
        elif isinstance(obj, keras.layers.Layer):
            shapes = tuple(_input_shapes(obj))
            out.append(_Item(obj.name, type(obj).__name__, layer_signature(obj, shapes), obj, shapes))
        else:
            raise LatencyTableError(f"expected Keras models or layers, got {type(obj).__name__}")
    return out


def _one_layer_model(item: _Item):
    """``keras.Input`` per input shape, then a fresh copy of the layer (its config, random weights)."""
    if item.signature == FLOOR:
        inputs = [keras.Input((1,))]
        return keras.Model(inputs, keras.layers.Dense(1)(inputs[0]))
    inputs = [keras.Input(s) for s in item.shapes]
    layer = type(item.layer).from_config(item.layer.get_config())
    return keras.Model(inputs, layer(inputs[0] if len(inputs) == 1 else inputs))


def _convert_item(item: _Item, seed: int = 0) -> bytes:
    """The one-layer model as full-int8 TFLite bytes, int8 input and output."""
    from keras_compress.convert import to_tflite

    model = _one_layer_model(item)
    rng = np.random.default_rng(seed)
    data = [rng.normal(size=(8, *(d for d in x.shape[1:]))).astype(np.float32) for x in model.inputs]
    try:
        return to_tflite(model, quantization="int8", representative_data=data[0] if len(data) == 1 else data,
                         input_type="int8", output_type="int8", verbose=False)
    except ConversionError as e:
        raise LatencyTableError(f"layer '{item.name}' ({item.class_name}): its one-layer model does not convert "
                                f"to int8 ({e})", (item.name,)) from None


def _entry_ms(rounds_ms: Sequence[float]) -> float:
    """An entry's figure: the fastest of its per-round medians.

    On the 2-vCPU development machine an entry's rounds fall on discrete
    levels, 1.3-1.5x apart (work on the other vCPU, likely the same core's
    other hyperthread): a 12-filter conv measured 0.044 ms in one round and
    0.065 ms in four, a 16-filter one the other way round, while alone both
    take 0.044 ms. A median then picks each entry's level at random and the sum
    mixes them (errors of +-20% on whole models); interference only ever adds
    time, so the fastest round is the entry's own cost, and the whole-model
    calibration carries whatever load the models really run under.
    """
    return min(rounds_ms)


def _round_robin(interpreters: Mapping[str, Any], rounds: int, runs: int, warmup: int,
                 after_round: Callable[[int, dict], None] | None = None) -> dict[str, list[float]]:
    """Median ms of ``runs`` invokes of every interpreter, once per round, the order rotating each round."""
    import edgetpu

    names = list(interpreters)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % max(len(names), 1)
        for n in names[k:] + names[:k]:
            out[n].append(edgetpu.benchmark(interpreters[n], runs=runs, warmup=warmup)["median_ms"])
        if after_round is not None:
            after_round(r, out)
    return out


def measure_tflite(models: Mapping[str, Any], *, num_threads: int = 1, rounds: int = 7, runs: int = 50,
                   warmup: int = 5, progress: Progress | None = None) -> dict[str, dict]:
    """Whole-model latency of several .tflite models, measured side by side (interleaved rounds).

    Every model is timed once per round (``runs`` invokes after ``warmup``, through
    :func:`edgetpu.benchmark`, XNNPACK on), the order rotating each round, so load
    drift hits all of them alike.

    Args:
        models: name -> .tflite bytes or path.
        num_threads: interpreter threads.
        rounds / runs / warmup: interleaved rounds; timed and untimed invokes per round.
        progress: called with one line per round.

    Returns:
        name -> ``{"median_ms"`` (median of the per-round medians), ``"rounds_ms"``,
        ``"spread_ms"`` (max - min of the per-round medians)``}``.
    """
    import edgetpu

    interpreters = {n: edgetpu.make_interpreter(m, num_threads=num_threads, use_xnnpack=True) for n, m in models.items()}

    def report(r, _out):
        if progress is not None:
            progress(f"[latency] whole models: round {r + 1}/{rounds} of {len(interpreters)} models")

    times = _round_robin(interpreters, rounds, runs, warmup, report)
    return {n: {"median_ms": statistics.median(t), "rounds_ms": t, "spread_ms": max(t) - min(t)} for n, t in times.items()}


@dataclass(frozen=True)
class LayerLatency:
    """One layer call in a prediction: ``ms`` is ``None`` where the layer has no cost of its own (see ``note``)."""

    name: str
    class_name: str
    signature: str | None
    ms: float | None
    note: str = ""


@dataclass(frozen=True)
class LatencyPrediction:
    """A whole-model prediction: ``total_ms = overhead_ms + sum of the layers' ms`` (already scaled).

    Attributes:
        total_ms: the predicted latency (a prediction, not a measurement).
        overhead_ms: the whole-model term (calibrated, or the floor entry if not).
        scale: the factor applied to every layer's ``entry - floor`` (1 unless calibrated with ``mode="scale"``).
        calibrated: whether ``overhead_ms`` / ``scale`` come from :meth:`LatencyTable.calibrate`.
        layers: every call of the model, in execution order (``ms`` scaled).
        unmodeled: operations with no entry and no known fold (Keras ops that are not layers).
        table_key: the machine / threads key of the table used.
    """

    total_ms: float
    overhead_ms: float
    scale: float
    calibrated: bool
    layers: tuple[LayerLatency, ...]
    unmodeled: tuple[str, ...]
    table_key: str

    def to_dict(self) -> dict:
        return asdict(self)


def _machine_key(num_threads: int) -> tuple[str, dict]:
    from keras_compress.machine import cpu_features

    import edgetpu

    m = cpu_features()
    backend = edgetpu.interpreter_backend()
    try:
        version = importlib.metadata.version(backend.name.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    info = {"cpu": m["cpu"], "arch": m["arch"], "isa": m["isa"], "interpreter": f"{backend.name} {version}",
            "num_threads": int(num_threads)}
    key = f"{info['cpu']} | {info['arch']} | {','.join(info['isa']) or '-'} | {info['interpreter']} | threads={num_threads}"
    return key, info


class LatencyTable:
    """A persistent lookup table of per-layer int8 latency on this machine (see the module docstring).

    Args:
        path: the JSON file (created on the first save; other machines' sections
            in it are kept). ``None``: in memory only.
        num_threads: interpreter threads (part of the key).
        rounds: interleaved rounds per entry; runs / warmup: timed and untimed
            invokes per entry per round.
        seed: seed of the one-layer models' calibration data.

    Raises:
        LatencyTableError: the file is not a table of this format.

    Example:
        >>> t = LatencyTable(None, num_threads=1)
        >>> t.entries, t.calibrated
        ({}, False)
    """

    def __init__(self, path: str | os.PathLike | None = None, *, num_threads: int = 1, rounds: int = 5,
                 runs: int = 30, warmup: int = 5, seed: int = 0):
        if int(num_threads) < 1 or rounds < 1 or runs < 1 or warmup < 0:
            raise LatencyTableError(f"num_threads, rounds, runs must be >= 1 and warmup >= 0, got {num_threads}, "
                                    f"{rounds}, {runs}, {warmup}")
        self.path = Path(path) if path is not None else None
        self.num_threads, self.rounds, self.runs, self.warmup, self.seed = int(num_threads), rounds, runs, warmup, seed
        self.key, self.machine = _machine_key(self.num_threads)
        self.conversions = 0  # one-layer models converted by this object (a second measure() adds none)
        section = self._read_file().get(self.key, {})
        self._samples: dict[str, list[float]] = {k: list(v["samples"]) for k, v in section.get("entries", {}).items()}
        self._classes: dict[str, str] = {k: v.get("class", "") for k, v in section.get("entries", {}).items()}
        self.calibration: dict | None = section.get("calibration")

    def _read_file(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise LatencyTableError(f"{self.path}: cannot read the latency table ({e})") from None
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise LatencyTableError(f"{self.path}: expected a latency table of format {TABLE_FORMAT!r}, found {found!r}")
        return data.get("tables", {})

    def save(self) -> None:
        """Write this machine's section to the file (atomically; other sections kept)."""
        if self.path is None:
            return
        from edgetpu import atomic_write_bytes

        tables = self._read_file()
        entries = {k: {"class": self._classes.get(k, ""), "ms": _entry_ms(v), "samples": v}
                   for k, v in sorted(self._samples.items())}
        tables[self.key] = {"machine": self.machine, "entries": entries, "calibration": self.calibration}
        text = json.dumps({"format": TABLE_FORMAT, "tables": tables}, indent=1, sort_keys=True)
        atomic_write_bytes(self.path, (text + "\n").encode())

    @property
    def entries(self) -> dict[str, float]:
        """signature -> ms (the fastest of its per-round medians, :func:`_entry_ms`), for the entries with all their rounds."""
        return {k: _entry_ms(v) for k, v in self._samples.items() if len(v) >= self.rounds}

    @property
    def floor_ms(self) -> float | None:
        """The floor entry (one-value ``Dense(1)``): what one ``invoke()`` of any model costs."""
        return self.entries.get(FLOOR)

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def _needed(self, models_or_layers) -> dict[str, _Item]:
        """signature -> one layer call that has it, for the signatures without a complete entry (floor first)."""
        needed = {FLOOR: _Item(FLOOR, "Dense", FLOOR)}
        needed.update((i.signature, i) for i in _items(models_or_layers) if i.signature is not None)
        done = self.entries
        return {s: i for s, i in needed.items() if s not in done}

    def missing(self, models_or_layers) -> list[str]:
        """Signatures of these models / layers not (fully) measured yet, the floor entry first if missing."""
        return list(self._needed(models_or_layers))

    def measure(self, models_or_layers, *, progress: Progress | None = None) -> list[str]:
        """Measure every signature of these models / layers not yet in the table; return those measured.

        Entries are converted once each, then timed round-robin (``rounds`` rounds,
        order rotating); the table is saved after every round. An entry left with
        fewer rounds by an interruption is completed by the next call.

        Raises:
            LatencyTableError: a layer's one-layer model does not convert (the message names it).
        """
        import edgetpu

        items = self._needed(models_or_layers)
        todo = list(items)
        if not todo:
            return []
        interpreters = {}
        for n, sig in enumerate(todo):
            if progress is not None:
                progress(f"[latency] converting {n + 1}/{len(todo)}: {items[sig].name} ({items[sig].class_name})")
            blob = _convert_item(items[sig], self.seed)
            self.conversions += 1
            interpreters[sig] = edgetpu.make_interpreter(blob, num_threads=self.num_threads, use_xnnpack=True)
            self._classes[sig] = items[sig].class_name
        rounds = self.rounds - min(len(self._samples.get(s, [])) for s in todo)

        def keep(r, out):
            for sig in todo:
                if len(self._samples.get(sig, [])) < self.rounds:
                    self._samples.setdefault(sig, []).append(out[sig][-1])
            self.save()
            if progress is not None:
                progress(f"[latency] round {r + 1}/{rounds}: {len(todo)} entries timed")

        _round_robin(interpreters, rounds, self.runs, self.warmup, keep)
        return todo

    def _layer_costs(self, model, measure_missing: bool, progress) -> tuple[list[LayerLatency], list[str]]:
        if measure_missing:
            self.measure(model, progress=progress)
        items, done, floor = _model_items(model), self.entries, self.floor_ms
        lacking = [i for i in items if i.signature is not None and i.signature not in done]
        if lacking or floor is None:
            names = [f"'{i.name}' ({i.class_name})" for i in lacking] or ["the floor entry"]
            raise LatencyTableError(
                f"latency table {self.path or '(in memory)'} [{self.key}] has no entry for {len(names)} layer(s) of "
                f"model '{model.name}': {', '.join(names)}; run LatencyTable.measure(model) or predict(..., "
                "measure_missing=True)", tuple(i.name for i in lacking))
        layers = [LayerLatency(i.name, i.class_name, i.signature, None if i.signature is None
                               else max(done[i.signature] - floor, 0.0), i.note) for i in items]
        return layers, [i.name for i in items if i.note.startswith("unmodeled")]

    def predict(self, model, *, measure_missing: bool = False, progress: Progress | None = None) -> LatencyPrediction:
        """Predicted whole-model latency: ``overhead + sum of per-layer ms`` (a prediction, not a measurement).

        Args:
            model: a built Sequential or Functional Keras model.
            measure_missing: measure the layers without an entry first (else raise).
            progress: progress lines while measuring.

        Raises:
            LatencyTableError: entries missing (its ``layers`` names them, so does the message).
        """
        layers, unmodeled = self._layer_costs(model, measure_missing, progress)
        cal = self.calibration or {"overhead_ms": self.floor_ms, "scale": 1.0}
        scale = cal["scale"]
        layers = [replace(x, ms=None if x.ms is None else scale * x.ms) for x in layers]
        total = cal["overhead_ms"] + sum(x.ms for x in layers if x.ms is not None)
        return LatencyPrediction(total, cal["overhead_ms"], scale, self.calibrated, tuple(layers), tuple(unmodeled),
                                 self.key)

    def calibrate(self, model, measured_ms: float, *, mode: str = "scale", measure_missing: bool = True,
                  progress: Progress | None = None) -> dict:
        """Fit the whole-model term on one measured model (the baseline); see the module docstring.

        Args:
            model: the Keras model whose int8 .tflite was measured.
            measured_ms: its median latency, measured with this table's thread count
                (e.g. by :func:`measure_tflite`).
            mode: ``"scale"`` (``overhead = floor``, ``scale = (measured - floor) / sum``)
                or ``"offset"`` (``scale = 1``, ``overhead = measured - sum``).
            measure_missing: measure its layers first where needed.

        Returns:
            ``{"mode", "overhead_ms", "scale", "model", "measured_ms", "layers_ms"}`` (saved with the table).
        """
        if mode not in ("scale", "offset"):
            raise LatencyTableError(f"calibrate(): mode must be 'scale' or 'offset', got {mode!r}")
        if not measured_ms > 0:
            raise LatencyTableError(f"calibrate(): measured_ms must be > 0, got {measured_ms!r}")
        layers, _ = self._layer_costs(model, measure_missing, progress)
        total = sum(x.ms for x in layers if x.ms is not None)
        measured = float(measured_ms)
        if mode == "scale" and total > 0:
            overhead, scale = self.floor_ms, max(measured - self.floor_ms, 0.0) / total
        else:
            overhead, scale = measured - total, 1.0
        self.calibration = {"mode": mode, "overhead_ms": overhead, "scale": scale, "model": model.name,
                            "measured_ms": measured, "layers_ms": total}
        self.save()
        return dict(self.calibration)


# Edge TPU estimate: fitted by hand to Coral's published table (coral.ai/docs/edgetpu/benchmarks,
# "Desktop CPU + USB Accelerator (USB 3.0)") with approximate MAC / parameter counts from the papers:
# MobileNet v1 224 (0.57 GMAC, 4.2 M params) 2.4 ms, Inception v1 224 (1.5 GMAC, 6.6 M) 3.4 ms,
# ResNet-50 299 (7.3 GMAC, 25.6 M) 49 ms, Inception v4 299 (12.3 GMAC, 42.7 M) 85 ms.
EDGETPU_PEAK_TOPS = 4.0
EDGETPU_UTILIZATION = 0.47
EDGETPU_INVOKE_MS = 1.8
EDGETPU_CACHE_BYTES = 8 * 2**20
EDGETPU_STREAM_MB_PER_S = 440.0


def edgetpu_latency_ms(macs: float, param_bytes: float, *, peak_tops: float = EDGETPU_PEAK_TOPS,
                       utilization: float = EDGETPU_UTILIZATION, invoke_ms: float = EDGETPU_INVOKE_MS,
                       cache_bytes: float = EDGETPU_CACHE_BYTES,
                       stream_mb_per_s: float = EDGETPU_STREAM_MB_PER_S) -> dict[str, Any]:
    """An ESTIMATE of one inference on a Coral USB Accelerator; no Edge TPU was used to make it.

    ``ms = invoke_ms + 2 * macs / (peak_tops * utilization) + streamed_bytes / stream rate``,
    where ``streamed_bytes`` is the part of ``param_bytes`` above the on-chip
    parameter cache (about 8 MiB, EDGETPU.md), sent over USB at every inference.
    Defaults: 4 TOPS int8 peak (Coral's datasheet); utilization 0.47, 1.8 ms per
    invoke (USB round trip and input/output transfer) and 440 MB/s streaming,
    fitted by hand to four rows of Coral's published benchmark table (MobileNet v1,
    Inception v1, ResNet-50, Inception v4; within ~15% of each with approximate
    MAC counts). Depthwise-heavy models run below that utilization (MobileNet v2:
    2.1 ms estimated, 2.6 ms published); ops that do not map run on the host CPU
    and are not counted; a PCIe device has a smaller per-invoke cost. Treat the
    figure as a ranking aid between candidates, not as a latency.

    Args:
        macs: multiply-accumulates of one inference (the mapped part of the model).
        param_bytes: int8 parameter bytes (weights and biases) of the mapped part.

    Returns:
        ``{"ms", "compute_ms", "stream_ms", "streamed_bytes", "estimate": True, "note"}``.
    """
    if macs < 0 or param_bytes < 0 or peak_tops <= 0 or not 0 < utilization <= 1 or stream_mb_per_s <= 0:
        raise LatencyTableError(f"edgetpu_latency_ms(): bad arguments macs={macs}, param_bytes={param_bytes}, "
                                f"peak_tops={peak_tops}, utilization={utilization}, stream_mb_per_s={stream_mb_per_s}")
    compute_ms = 2.0 * macs / (peak_tops * 1e12 * utilization) * 1e3
    streamed = max(0.0, float(param_bytes) - cache_bytes)
    stream_ms = streamed / (stream_mb_per_s * 1e6) * 1e3
    return {"ms": invoke_ms + compute_ms + stream_ms, "compute_ms": compute_ms, "stream_ms": stream_ms,
            "streamed_bytes": streamed, "estimate": True,
            "note": "Edge TPU latency ESTIMATED from MACs and parameter bytes (no Edge TPU on this machine)"}
