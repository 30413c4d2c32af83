"""The search space: which layers each method can take, and the settings tried for each.

Each method has a ladder of settings, from mild to strong (:data:`LEVELS`); a
layer's choice for a method is a rung of that ladder or nothing. A layer is a
candidate of a method only if the method can take it on this model: filter
pruning is tried on the layer alone (layers feeding the output or an Add are
refused by :func:`~keras_compress.pruning.prune_filters`), low-rank needs a
Dense / Conv layer that :func:`~keras_compress.decomposition.plan_decomposition`
can factorize, sparsity and clusters need a kernel the ``prune`` / ``cluster``
stages take.

Example:
    >>> import keras
    >>> from keras_compress.search.space import SearchSpace
    >>> m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
    ...                       keras.layers.Flatten(name="flat"), keras.layers.Dense(4, name="fc")])
    >>> space = SearchSpace.of(m, ("filters", "sparsity"))
    >>> space.candidates
    {'conv': {'filters': (0.125, 0.25, 0.375, 0.5, 0.625, 0.75), 'sparsity': (0.5, 0.75, 0.9, 0.95)}, 'fc': {'sparsity': (0.5, 0.75, 0.9, 0.95)}}
    >>> space.size()
    14
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from keras_compress.errors import ConfigError
from keras_compress.search.plan import METHODS, check_setting

__all__ = ["SearchSpace", "LEVELS", "DEFAULT_METHODS"]

#: Settings tried per method, mild to strong: fraction of filters removed, fraction of MACs kept
#: by the two factors, fraction of weights zeroed, number of clusters. Filters, the knob that
#: cuts CPU latency most directly, has the finest ladder: with steps of 0.25 a latency budget
#: was met with room to spare (0.74x of the limit) and a plan aimed at 85% of a cost landed at 68%.
LEVELS: Mapping[str, tuple] = {
    "filters": (0.125, 0.25, 0.375, 0.5, 0.625, 0.75),
    "lowrank": (0.5, 0.25, 0.125),
    "sparsity": (0.5, 0.75, 0.9, 0.95),
    "clusters": (32, 16, 8),
    "bits": (4,),
}
#: What ``search`` allocates unless told otherwise (``bits`` is opt-in: 4-bit weights run on CPU runtimes only).
DEFAULT_METHODS = ("filters", "sparsity", "lowrank", "clusters")
#: Layer types whose weights AI Edge Quantizer takes at 4 bits.
FOUR_BIT_TYPES = ("Dense", "Conv1D", "Conv2D")


def _filter_candidates(model) -> list[str]:
    from keras_compress.errors import PruningError
    from keras_compress.pruning import prune_filters
    import keras

    L = keras.layers
    kinds = (L.Conv1D, L.Conv2D, L.SeparableConv1D, L.SeparableConv2D, L.Dense)  # what prune_filters shrinks
    names = []
    for name in [layer.name for layer in model.layers if type(layer) in kinds]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prune_filters(model, 0.5, layers=[name])
        except PruningError:
            continue
        names.append(name)
    return names


def _lowrank_candidates(model) -> list[str]:
    from keras_compress.decomposition import plan_decomposition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plans = plan_decomposition(model, ratio=0.5)
    return [p.path for p in plans if p.decomposed]


def _kernel_candidates(names: Sequence[str], model) -> list[str]:
    return [n for n in names if hasattr(model.get_layer(n), "kernel")]


def candidate_layers(model, method: str) -> list[str]:
    """The layers of ``model`` that ``method`` can compress (top-level layers, in model order)."""
    if method == "filters":
        return _filter_candidates(model)
    if method == "lowrank":
        return _lowrank_candidates(model)
    if method == "bits":
        return [layer.name for layer in model.layers if type(layer).__name__ in FOUR_BIT_TYPES]
    if method == "sparsity":
        from keras_compress.pruning.recipes import prunable_layer_names

        return _kernel_candidates(prunable_layer_names(model), model)
    from keras_compress.clustering.cluster import clusterable_layer_names

    return _kernel_candidates(clusterable_layer_names(model), model)


@dataclass(frozen=True)
class SearchSpace:
    """``candidates``: ``{layer: {method: settings, mild to strong}}``, layers in model order."""

    candidates: Mapping[str, Mapping[str, tuple]]

    @classmethod
    def of(cls, model, methods: Sequence[str] = DEFAULT_METHODS, levels: Mapping[str, Sequence[Any]] | None = None,
           layers: Sequence[str] | None = None) -> "SearchSpace":
        """The space of ``model`` for ``methods``; ``levels`` overrides :data:`LEVELS` per method.

        Args:
            model: a built Keras model (its top-level layers are the candidates).
            methods: a subset of ``filters``, ``lowrank``, ``sparsity``, ``clusters``.
            levels: ``{method: settings}`` to try instead of the defaults (mild to strong).
            layers: only these layers (default: every layer a method can take).

        Raises:
            ConfigError: an unknown method, a bad setting, or a named layer no method can take.
        """
        methods = tuple(methods)
        for m in methods:
            if m not in METHODS:
                raise ConfigError(f"search methods: unknown method {m!r}; expected some of {', '.join(METHODS)}")
        ladders = {m: tuple(check_setting(f"levels[{m!r}]", m, v) for v in (levels or {}).get(m, LEVELS[m])) for m in methods}
        order = [layer.name for layer in model.layers]
        found: dict[str, dict[str, tuple]] = {}
        for m in methods:
            for name in candidate_layers(model, m):
                if layers is None or name in layers:
                    found.setdefault(name, {})[m] = ladders[m]
        if layers is not None:
            missing = [n for n in layers if n not in found]
            if missing:
                raise ConfigError(f"search layers: {missing} cannot be compressed by {', '.join(methods)} "
                                  f"(candidates: {', '.join(sorted(found)) or 'none'})")
        ordered = {n: {m: found[n][m] for m in methods if m in found[n]} for n in order if n in found}
        return cls(ordered)

    def entries(self) -> Iterator[tuple[str, str, Any]]:
        """Every ``(layer, method, setting)`` of the space, in order."""
        for name, methods in self.candidates.items():
            for method, settings in methods.items():
                for s in settings:
                    yield name, method, s

    def size(self) -> int:
        """Number of ``(layer, method, setting)`` entries: the sensitivity analysis's work."""
        return sum(1 for _ in self.entries())

    def methods(self) -> tuple[str, ...]:
        """The methods with at least one candidate layer, in application order."""
        used = {m for ms in self.candidates.values() for m in ms}
        return tuple(m for m in METHODS if m in used)
