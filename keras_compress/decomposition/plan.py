"""Which layers to factorize, how, and why the others are left alone: a plan is data.

:func:`plan_decomposition` takes the same arguments as
:func:`~keras_compress.decomposition.decompose` and returns one
:class:`LayerPlan` per candidate layer (method, rank, MACs and parameters
before and after, retained energy, or the reason it is left alone), without
building anything. A budget search can call it cheaply and hand per-layer
settings back to ``decompose``.

``layers`` selects and configures:

- ``None``: every Dense / Conv1D / Conv2D / Conv3D layer, nested models included;
- a name or regular expression, or a list of them: the layers whose name (or
  ``outer/inner`` path) matches in full (a regular expression reaches only
  Dense and convolution layers; an exact name reaches any layer);
- a dict pattern -> setting, where a setting is an int (rank), a float (MAC
  ratio), a dict with any of ``rank``, ``energy``, ``ratio``, ``method``
  (missing keys come from the global arguments), or ``None`` (leave alone).
  The first matching pattern wins.

A pattern that names a layer exactly and cannot be factorized raises
:class:`~keras_compress.errors.DecompositionError` with the reason; layers
reached only through a wider regex, or through ``layers=None``, are left alone
and listed with the reason. A pattern that matches no layer raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import keras

from keras_compress.decomposition.macs import FACTORIZABLE, Geometry
from keras_compress.decomposition.rank import Choice, Setting, choose
from keras_compress.decomposition.svd import KernelSVD
from keras_compress.errors import DecompositionError

__all__ = ["LayerPlan", "call_counts", "plan_decomposition", "refusal", "walk"]

_L = keras.layers

#: Layers a regular expression in ``layers`` may reach (the others it matches, e.g. ReLU, are ignored):
#: the factorizable ones and the conv-like ones whose refusal is worth listing.
_CONV_LIKE = (*FACTORIZABLE, _L.DepthwiseConv1D, _L.DepthwiseConv2D, _L.SeparableConv1D, _L.SeparableConv2D,
              _L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)


@dataclass(frozen=True)
class LayerPlan:
    """The decision for one candidate layer.

    Attributes:
        path: layer name, ``outer/inner`` inside nested models.
        layer_type: class name of the layer.
        method: ``"svd"`` (Dense), ``"channel"`` or ``"spatial"``; ``None`` if left alone.
        rank: rank of the factorization; ``None`` if left alone.
        full_rank: rank of the unfactorized kernel for ``method``.
        macs_before, macs_after: MACs of the layer / of its two factors (equal if left alone).
        params_before, params_after: parameters, likewise.
        energy: fraction of the squared singular values kept (1.0 if left alone).
        reason: why the layer is left alone; ``None`` when it is factorized.
    """

    path: str
    layer_type: str
    method: str | None = None
    rank: int | None = None
    full_rank: int | None = None
    macs_before: int = 0
    macs_after: int = 0
    params_before: int = 0
    params_after: int = 0
    energy: float = 1.0
    reason: str | None = None

    @property
    def decomposed(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict:
        return asdict(self)


def walk(model, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yields ``(path, layer, parent model)`` for every layer, nested models entered."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from walk(layer, f"{prefix}{layer.name}/")
        else:
            yield prefix + layer.name, layer, model


def call_counts(model) -> dict[str, int]:
    """Layer name -> how many times ``model`` calls it (from the model's public config)."""
    if isinstance(model, keras.Sequential):
        return {layer.name: 1 for layer in model.layers}
    try:
        layer_cfgs = model.get_config()["layers"]
    except (KeyError, TypeError, NotImplementedError):
        return {}
    return {c.get("name", c["config"]["name"]): len(c.get("inbound_nodes", [])) for c in layer_cfgs}


def refusal(layer, calls: int = 1) -> str | None:
    """Why ``layer`` (called ``calls`` times in its model) cannot be factorized, or ``None`` if it can."""
    kind = type(layer).__name__
    if type(layer) not in FACTORIZABLE:
        if isinstance(layer, FACTORIZABLE):
            return f"{kind} is a subclass of a Keras layer; only built-in Dense / Conv layers are factorized"
        if isinstance(layer, (_L.DepthwiseConv1D, _L.DepthwiseConv2D)):
            return f"{kind} has one filter per channel: there is no channel rank to cut"
        return f"{kind} cannot be factorized (Dense, Conv1D, Conv2D and Conv3D can)"
    if not layer.built:
        return "not built"
    if calls > 1:
        return f"the layer is shared (called at {calls} places in its model)"
    if getattr(layer, "groups", 1) != 1:
        return f"grouped convolution (groups={layer.groups}): factors across groups are not supported"
    if getattr(layer, "lora_enabled", False):
        return "LoRA is enabled on it; merge or disable LoRA first"
    if getattr(layer, "quantization_mode", None):
        return f"already quantized by Keras (mode {layer.quantization_mode!r})"
    if layer.kernel_constraint is not None:
        return "it has a kernel_constraint, which does not carry over to two factors"
    try:
        Geometry.of(layer)
    except DecompositionError as e:  # unknown spatial size
        return str(e).split(": ", 1)[-1]
    return None


class _Selector:
    """Resolves ``layers`` into a per-layer setting."""

    def __init__(self, layers: Any, default: Setting | None):
        self.default = default
        if layers is None:
            self.patterns = None
            return
        if isinstance(layers, (str, keras.layers.Layer)):
            layers = [layers]
        if isinstance(layers, Mapping):
            items = list(layers.items())
        elif isinstance(layers, Sequence):
            items = [(p, ...) for p in layers]
        else:
            raise DecompositionError(f"layers: expected None, a name, a list or a dict; got {type(layers).__name__}")
        self.patterns = []
        for pattern, value in items:
            name = pattern.name if isinstance(pattern, keras.layers.Layer) else pattern
            if not isinstance(name, str):
                raise DecompositionError(f"layers: expected layer names or patterns; got {pattern!r}")
            try:
                regex = re.compile(name)
            except re.error as e:
                raise DecompositionError(f"layers: {name!r} is not a valid regular expression ({e})") from None
            self.patterns.append((name, regex, value))
        self.matched: set[str] = set()

    def setting(self, path: str, layer) -> tuple[Setting | None, bool, bool]:
        """``(setting, selected, explicit)`` for one layer."""
        if self.patterns is None:
            return self.default, isinstance(layer, FACTORIZABLE), False
        for name, regex, value in self.patterns:
            if regex.fullmatch(path) or regex.fullmatch(layer.name):
                explicit = name in (path, layer.name)
                if not explicit and not isinstance(layer, _CONV_LIKE):
                    continue
                self.matched.add(name)
                if value is None:
                    return None, False, explicit
                if value is ...:
                    if self.default is None:
                        raise DecompositionError("give one of rank, energy, ratio (globally or per layer)")
                    return self.default, True, explicit
                return Setting.get(value, self.default, f"layers[{name!r}]"), True, explicit
        return None, False, False

    def check_all_matched(self, model_name: str) -> None:
        if self.patterns is None:
            return
        missing = [n for n, _, _ in self.patterns if n not in self.matched]
        if missing:
            raise DecompositionError(f"layers: {missing} match no layer of model '{model_name}'")


def _plan_layer(path: str, layer, setting: Setting, calls: int) -> tuple[LayerPlan, KernelSVD | None]:
    kind = type(layer).__name__
    reason = refusal(layer, calls)
    if reason is not None:
        return LayerPlan(path, kind, reason=reason), None
    geometry = Geometry.of(layer)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    svds = {m: KernelSVD(kernel, m) for m in geometry.methods()}
    before = {"macs_before": geometry.macs_before, "params_before": geometry.params_before}
    choice = choose(geometry, svds, setting)
    if not isinstance(choice, Choice):
        return LayerPlan(path, kind, macs_after=before["macs_before"], params_after=before["params_before"],
                         reason=choice, **before), None
    svd = svds[choice.method]
    plan = LayerPlan(path, kind, choice.method, choice.rank, svd.full_rank, macs_after=choice.macs,
                     params_after=choice.params, energy=choice.energy, **before)
    return plan, svd


def global_setting(rank=None, energy=None, ratio=None, method="auto") -> Setting | None:
    """The :class:`Setting` of the global arguments, or ``None`` if none of rank/energy/ratio is given."""
    if rank is None and energy is None and ratio is None:
        return None
    return Setting(rank=rank, energy=energy, ratio=ratio, method=method)


def plan_entries(model, *, rank=None, energy=None, ratio=None, layers=None, method="auto"):
    """``[(LayerPlan, layer, KernelSVD or None)]`` for every candidate layer of ``model``."""
    if not isinstance(model, keras.Model):
        raise DecompositionError(f"expected a keras.Model; got {type(model).__name__}")
    default = global_setting(rank, energy, ratio, method)
    if default is None and not isinstance(layers, Mapping):
        raise DecompositionError("give one of rank, energy, ratio (or per-layer settings in a `layers` dict)")
    selector = _Selector(layers, default)
    entries, counts = [], {}
    for path, layer, parent in walk(model):
        setting, selected, explicit = selector.setting(path, layer)
        if not selected:
            continue
        if id(parent) not in counts:
            counts[id(parent)] = call_counts(parent)
        calls = counts[id(parent)].get(layer.name, 1)
        plan, svd = _plan_layer(path, layer, setting, calls)
        if explicit and plan.reason is not None and refusal(layer, calls) is not None:
            raise DecompositionError(f"layer '{path}': cannot be factorized: {plan.reason}")
        entries.append((plan, layer, svd))
    selector.check_all_matched(model.name)
    return entries


def plan_decomposition(model, *, rank: int | None = None, energy: float | None = None,
                       ratio: float | None = None, layers: Any = None, method: str = "auto") -> list[LayerPlan]:
    """The per-layer decisions :func:`~keras_compress.decomposition.decompose` would take.

    Takes the same arguments as ``decompose`` and builds nothing.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((16, 16, 8)), keras.layers.Conv2D(32, 3, name="conv"),
        ...                       keras.layers.Flatten(), keras.layers.Dense(10, name="fc")])
        >>> [(p.path, p.method, p.rank, p.decomposed) for p in plan_decomposition(m, ratio=0.5, layers=["conv"])]
        [('conv', 'channel', 11, True)]
    """
    return [plan for plan, _, _ in plan_entries(model, rank=rank, energy=energy, ratio=ratio,
                                                   layers=layers, method=method)]
