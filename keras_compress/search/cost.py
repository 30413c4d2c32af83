"""The cost model: a plan's int8 size, gzip size, MACs and latency, predicted from the model.

The plan's structure (``filters``, ``lowrank``) is applied for real
(:func:`~keras_compress.search.apply.apply_structure`, a few tens of ms; cached
per structure), so every layer's shapes are exact; then per layer:

- ``size``: int8 kernels (1 byte per weight), int32 biases, and per-channel
  quantization parameters (a float32 scale and an int64 zero point per output
  channel of each tensor); BatchNormalization adds nothing (the converter folds it);
- ``gzip``: each layer's kernel quantized to int8 per output channel, laid out
  output-channel first as TFLite stores it, after the plan's sparsity and
  clusters, gzipped at level 9 (cached per layer and setting);
- ``macs``: :func:`keras_compress.decomposition.macs.model_macs`;
- ``latency``: the target's latency model (a measured per-layer lookup table on
  the CPU, :mod:`keras_compress.search.latency`), given as a callable.

Sizes are sums over layers plus an offset for what the file holds besides
weights (graph, names, metadata), fitted on the original model's measured file
by :meth:`CostModel.calibrate`; predictions are checked against the files the
search then writes.

Example:
    >>> import keras
    >>> from keras_compress.search import Plan
    >>> from keras_compress.search.cost import CostModel
    >>> m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
    ...                       keras.layers.Flatten(name="flat"), keras.layers.Dense(4, name="fc")])
    >>> costs = CostModel(m)
    >>> costs.predict(Plan())["size"], costs.predict(Plan({"conv": {"filters": 0.5}}))["size"]
    (1560.0, 836.0)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from keras_compress.search.plan import Plan

__all__ = ["CostModel", "COSTS"]

#: The costs predicted for every plan.
COSTS = ("size", "gzip", "macs", "latency")
_QPARAM_BYTES = 12  # float32 scale + int64 zero point per channel


def _tensors(layer) -> list[np.ndarray]:
    import keras

    if isinstance(layer, keras.layers.BatchNormalization):
        return []
    return [np.asarray(w) for w in layer.get_weights()]


def _layer_size(layer, four_bit: bool = False) -> float:
    total = 0.0
    for w in _tensors(layer):
        per_element = (0.5 if four_bit else 1) if w.ndim >= 2 else 4
        total += w.size * per_element + w.shape[-1] * _QPARAM_BYTES
    return total


def _base_name(name: str, plan: Plan) -> str:
    """The plan's name of a layer: ``fc`` for ``fc_a`` / ``fc_b`` when ``fc`` was factorized."""
    return name[:-2] if name.endswith(("_a", "_b")) and name[:-2] in plan.layers else name


def _int8_bytes(kernel: np.ndarray, four_bit: bool = False) -> bytes:
    """``kernel`` quantized per output channel (last axis), output channel first: int8, or 4-bit packed two per byte."""
    k = np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1)
    top = 7.0 if four_bit else 127.0
    scale = np.maximum(np.abs(k).max(axis=1, keepdims=True), 1e-12) / top
    q = np.clip(np.round(k / scale), -top, top).astype(np.int8).reshape(-1)
    if not four_bit:
        return q.tobytes()
    nibbles = (q.astype(np.uint8) & 0x0F)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()


class CostModel:
    """Predicts :data:`COSTS` for plans on one model.

    Args:
        model: the original Keras model.
        latency: ``fn(keras_model) -> ms`` for the target, or ``None`` (no latency prediction).
        allocate_latency: predict latency for every plan the allocation costs (needed
            with a latency budget); otherwise only when asked (``predict(plan, latency=True)``).
    """

    def __init__(self, model, latency: Callable[[Any], float] | None = None, *, allocate_latency: bool = True):
        self.model = model
        self.latency_fn = latency
        self.allocate_latency = allocate_latency and latency is not None
        self._latency: dict[str, float] = {}
        self.offsets = {"size": 0.0, "gzip": 0.0, "latency": 0.0}
        self.per_layer: dict[str, float] = {}
        self._structures: dict[str, Any] = {}
        self._gzip: dict[tuple, int] = {}
        self._costs: dict[str, dict[str, float]] = {}

    def structure(self, plan: Plan):
        """The plan's architecture (``filters`` and ``lowrank`` applied; cached)."""
        from keras_compress.search.apply import apply_structure

        key = plan.structural().key()
        if key not in self._structures:
            self._structures[key] = apply_structure(self.model, plan.structural())
        return self._structures[key]

    def _layer_gzip(self, skey: str, layer, plan: Plan) -> int:
        from keras_compress.search.apply import cluster_kernel, sparsify_kernel
        from keras_compress.summary import gzip_size

        base = _base_name(layer.name, plan)
        s, k, b = plan.get(base, "sparsity"), plan.get(base, "clusters"), plan.get(base, "bits")
        key = (skey, layer.name, s, k, b)
        if key not in self._gzip:
            blobs = []
            for w in _tensors(layer):
                if w.ndim >= 2:
                    if s is not None:
                        w = sparsify_kernel(w, s)
                    if k is not None:
                        w = cluster_kernel(w, k, s is not None)
                    blobs.append(_int8_bytes(w, b == 4))
                else:
                    blobs.append(w.astype(np.int32).tobytes() if w.dtype.kind in "iu" else
                                 np.round(w * 1e4).astype(np.int32).tobytes())
            self._gzip[key] = gzip_size(b"".join(blobs)) if blobs else 0
        return self._gzip[key]

    def raw(self, plan: Plan) -> dict[str, float]:
        """The per-layer sums without the calibrated offsets."""
        from keras_compress.decomposition.macs import model_macs

        key = plan.key()
        if key not in self._costs:
            skey = plan.structural().key()
            model = self.structure(plan)
            layers = [layer for layer in model.layers if layer.weights]
            costs = {
                "size": float(sum(_layer_size(layer, plan.get(_base_name(layer.name, plan), "bits") == 4)
                                  for layer in layers)),
                "gzip": float(sum(self._layer_gzip(skey, layer, plan) for layer in layers)),
                "macs": float(model_macs(model)),
            }
            self._costs[key] = costs
        out = dict(self._costs[key])
        out["latency"] = self.latency(plan) if self.allocate_latency else float("nan")
        return out

    def latency(self, plan: Plan) -> float:
        """The latency model's ms for the plan's architecture, without the offset (cached per structure)."""
        if self.latency_fn is None or plan.by_method("bits"):
            return float("nan")  # the latency table holds int8 layers; 4-bit weights run other kernels
        key = plan.structural().key()
        if key not in self._latency:
            self._latency[key] = float(self.latency_fn(self.structure(plan)))
        return self._latency[key]

    def _weighted_layers(self, plan: Plan) -> int:
        return sum(1 for layer in self.structure(plan).layers if layer.weights)

    def predict(self, plan: Plan, *, latency: bool | None = None) -> dict[str, float]:
        """``{"size", "gzip", "macs", "latency"}`` of the plan (bytes, bytes, MACs, ms).

        ``latency``: include the latency prediction (default: when the allocation
        uses it, ``allocate_latency``); otherwise it is NaN.
        """
        raw = self.raw(plan)
        if latency or (latency is None and self.allocate_latency):
            raw["latency"] = self.latency(plan)
        n = self._weighted_layers(plan)
        out = {c: raw[c] + self.offsets.get(c, 0.0) for c in COSTS}
        for c in ("size", "gzip"):
            out[c] += self.per_layer.get(c, 0.0) * n
        return out

    def calibrate(self, measured: dict[str, float], reference: tuple[Plan, dict[str, float]] | None = None) -> dict:
        """Fit the offsets on the original's measured ``size``, ``gzip`` and ``latency``; returns them.

        With ``reference`` (a plan with more weighted layers than the original, e.g.
        factorized ones, and its measured ``size`` / ``gzip``), the file sizes get a
        per-weighted-layer term too (what each op's tensors, names and quantization
        records cost besides the weights): ``size = sum + offset + per_layer * layers``.
        """
        raw = dict(self.raw(Plan()), latency=self.latency(Plan()))
        n0 = self._weighted_layers(Plan())
        n1 = self._weighted_layers(reference[0]) if reference else n0
        for c in ("size", "gzip", "latency"):
            if measured.get(c) is None or not np.isfinite(raw[c]):
                continue
            if c != "latency" and reference and n1 != n0 and reference[1].get(c) is not None:
                rest0 = float(measured[c]) - raw[c]
                rest1 = float(reference[1][c]) - self.raw(reference[0])[c]
                self.per_layer[c] = (rest1 - rest0) / (n1 - n0)
            self.offsets[c] = float(measured[c]) - raw[c] - self.per_layer.get(c, 0.0) * n0
        return {"offsets": dict(self.offsets), "per_layer": dict(self.per_layer)}
