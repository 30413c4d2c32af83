"""``decompose``: low-rank factorization of Dense / Conv layers, then recovery fine-tuning (distilled by default).

Give exactly one of ``rank`` (fixed), ``energy`` (retained fraction of the
squared singular values) or ``ratio`` (of each layer's MACs); ``method``
(``auto``, ``channel``, ``spatial``) chooses how Conv layers factorize (see
:func:`keras_compress.decomposition.decompose`). ``layers`` selects:

- ``null`` (default): every Dense / Conv layer; those where no factorization
  saves MACs, or that cannot be factorized, are left alone and listed;
- a layer regex or a list of them: the Dense / Conv layers they match;
- a per-layer map ``{regex: setting or null}``, where a setting is ``true``
  (the stage's own), an int rank, a float MAC ratio, or a mapping with one of
  ``rank`` / ``energy`` / ``ratio`` and / or ``method``; ``null`` leaves a
  layer alone. As in every per-layer map of a recipe
  (:class:`~keras_compress.pipeline.layermap.LayerMap`): ``re.search``, the
  last matching pattern wins, a pattern that matches no Dense / Conv layer is
  an error. Then, with ``rank``, ``energy`` and ``ratio`` left out, every
  entry gives its own.

Recovery: ``recovery: distil`` (default) distils the factorized model from
the model this stage received (or from the variant ``teacher``), with the
recipe's ``distillation`` settings; ``recovery: labels`` fine-tunes on the
labels. The per-layer decisions, MACs and parameters before and after are
printed, kept in the artifact's ``meta["decomposition"]`` and written to
``run.json`` under ``decomposition.<variant>``.

Recipe form::

    - decompose: {ratio: 0.45, layers: ["^conv[23]$", "^fc$"], epochs: 5}
    - decompose: {energy: 0.9, method: channel, recovery: labels}
    - decompose: {layers: {"^conv2$": 0.3, "^conv3$": {energy: 0.95}, "^fc$": 16}}

Example:
    >>> from keras_compress.pipeline.spec import build_spec
    >>> spec = build_spec(DecomposeSpec, {"ratio": 0.45, "layers": ["^conv[23]$", "^fc$"]}, "decompose")
    >>> spec.criterion, spec.layers.resolve(["conv1", "conv2", "conv3", "fc", "logits"])
    ({'ratio': 0.45}, {'conv2': True, 'conv3': True, 'fc': True})
    >>> build_spec(DecomposeSpec, {"rank": 8, "ratio": 0.5}, "decompose")
    Traceback (most recent call last):
    ...
    keras_compress.errors.ConfigError: decompose: give exactly one of rank, energy, ratio; got rank, ratio
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

from keras_compress.errors import ConfigError
from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.fit import FitSpec, fit
from keras_compress.pipeline.layermap import LayerMap
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import choice, choices_text, file_name, integer, number, optional, setting

__all__ = ["DecomposeSpec", "run", "STAGE", "METHODS", "RECOVERIES"]

#: How Conv layers factorize (:class:`keras_compress.decomposition.Method`'s values).
METHODS = ("auto", "channel", "spatial")
#: How the factorized model recovers: distilled from a teacher, or fine-tuned on the labels.
RECOVERIES = ("distil", "labels")
_CRITERIA = ("rank", "energy", "ratio")
_CHECKS = {
    "rank": integer(1, None),
    "energy": number(0.0, 1.0, lo_open=True),
    "ratio": number(0.0, 1.0, lo_open=True, hi_open=True),
    "method": choice(METHODS),
}


def _layer_setting(where: str, v: Any) -> Any:
    """One layer's setting: ``true``, an int rank, a float ratio, or ``{rank|energy|ratio, method}``."""
    if v is True:
        return True
    if isinstance(v, int) and not isinstance(v, bool):
        return _CHECKS["rank"](where, v)
    if isinstance(v, float):
        return _CHECKS["ratio"](where, v)
    if isinstance(v, Mapping):
        unknown = [k for k in v if k not in _CHECKS]
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown field; allowed: {choices_text(_CHECKS)}")
        given = [k for k in _CRITERIA if k in v]
        if len(given) > 1:
            raise ConfigError(f"{where}: give at most one of rank, energy, ratio; got {', '.join(given)}")
        return {k: _CHECKS[k](f"{where}.{k}", x) for k, x in v.items()}
    raise ConfigError(
        f"{where}: expected true, an int rank, a float MAC ratio in (0, 1), null, or a mapping with "
        f"rank / energy / ratio / method; got {v!r}"
    )


def _layers(where: str, v: Any) -> LayerMap | None:
    """``null``, a layer regex, a list of them, or ``{regex: setting or null}``."""
    if v is None or isinstance(v, LayerMap):
        return v
    if isinstance(v, str) or (isinstance(v, (list, tuple)) and v and all(isinstance(p, str) for p in v)):
        data: Any = dict.fromkeys([v] if isinstance(v, str) else v, True)
    elif isinstance(v, Mapping) and v:
        data = {k: None if x is None else _layer_setting(f"{where}[{k!r}]", x) for k, x in v.items()}
    elif v is True:
        data = True
    else:
        raise ConfigError(
            f"{where}: expected null (every Dense / Conv layer), a layer regex, a non-empty list of them, "
            f"or a non-empty {{regex: setting or null}} mapping; got {v!r}"
        )
    try:
        return LayerMap.of(data)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _has_own_criterion(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(k in value for k in _CRITERIA)
    return value is not True


@dataclass(frozen=True, kw_only=True)
class DecomposeSpec(FitSpec):
    """Rank criterion (one of rank / energy / ratio), method, layers, and the recovery fine-tuning."""

    rank: int | None = setting(optional(_CHECKS["rank"]), None)
    energy: float | None = setting(optional(_CHECKS["energy"]), None)
    ratio: float | None = setting(optional(_CHECKS["ratio"]), None)
    method: str = setting(_CHECKS["method"], "auto")
    layers: LayerMap | None = setting(_layers, None)
    recovery: str = setting(choice(RECOVERIES), "distil")
    teacher: str | None = setting(optional(file_name), None)
    epochs: int = setting(integer(1, 10_000), 5)
    learning_rate: float = setting(number(0.0, 1.0, lo_open=True), 5e-4)

    @property
    def criterion(self) -> dict:
        """The stage's own criterion, as ``decompose`` takes it (``{}`` when every layer gives its own)."""
        return {k: getattr(self, k) for k in _CRITERIA if getattr(self, k) is not None}

    def check(self, where: str) -> None:
        """Exactly one of rank / energy / ratio, unless every entry of ``layers`` gives its own; a teacher only to distil."""
        given = list(self.criterion)
        if len(given) > 1:
            raise ConfigError(f"{where}: give exactly one of rank, energy, ratio; got {', '.join(given)}")
        if not given and (self.layers is None or not all(_has_own_criterion(v) for _, v in self.layers.rules)):
            raise ConfigError(
                f"{where}: give exactly one of rank, energy, ratio (or a rank / ratio / energy for every entry of "
                f"{where}.layers); got none"
            )
        if self.teacher is not None and self.recovery != "distil":
            raise ConfigError(f"{where}.teacher: only with recovery 'distil'; got recovery {self.recovery!r}")


def _as_mapping(value: Any) -> dict:
    """A per-layer value as ``decompose``'s per-layer dict: ``true`` -> ``{}``, int -> rank, float -> ratio."""
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {"rank": value} if isinstance(value, int) else {"ratio": value}


def _decompose_args(spec: DecomposeSpec, model, name: str) -> dict:
    """``decompose``'s keyword arguments: the criterion, method, and the layers the map selects, by exact name."""
    from keras_compress.decomposition.macs import FACTORIZABLE
    from keras_compress.decomposition.plan import walk

    kwargs: dict[str, Any] = {**spec.criterion, "method": spec.method, "layers": None}
    if spec.layers is not None:
        candidates = [path for path, layer, _ in walk(model) if isinstance(layer, FACTORIZABLE)]
        chosen = spec.layers.select(candidates, "decompose.layers", f"Dense / Conv layer of {name!r}")
        if not chosen:
            raise ConfigError(f"decompose.layers: selects no layer of {name!r}; candidates: {', '.join(candidates)}")
        kwargs["layers"] = {re.escape(p): {"method": spec.method, **_as_mapping(v)} for p, v in chosen.items()}
    return kwargs


def _factorize(spec: DecomposeSpec, artifact: Artifact, ctx) -> tuple[Any, dict]:
    """The factorized model and the record of what was done (totals and one row per Dense / Conv layer)."""
    from keras_compress.decomposition import decompose, decomposition_report, model_macs

    model = artifact.model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small = decompose(model, **_decompose_args(spec, model, artifact.name))
    for w in caught:
        ctx.say(f"  {w.message}")
    rows = decomposition_report(model, small, print_fn=lambda line: ctx.say(f"  {line}"))
    record = {
        "setting": {**spec.criterion, "method": spec.method},
        "macs_before": model_macs(model), "macs_after": model_macs(small),
        "params_before": model.count_params(), "params_after": small.count_params(),
        "layers": rows,
    }
    return small, record


def run(spec: DecomposeSpec, artifact: Artifact, ctx) -> Artifact:
    spec.check("decompose")
    small, record = _factorize(spec, artifact, ctx)
    done = sum(r["status"] == "decomposed" for r in record["layers"])
    teacher = artifact.model if spec.teacher is None else spec.teacher
    how = "on the labels" if spec.recovery == "labels" else f"distilled from {spec.teacher or 'the model it received'}"
    ctx.say(
        f"[decompose] {artifact.name}: {done} layer(s) factorized ({record['setting']}), MACs "
        f"{record['macs_before']:,} -> {record['macs_after']:,} ({record['macs_after'] / max(record['macs_before'], 1):.0%}), "
        f"{record['params_before']:,} -> {record['params_after']:,} parameters; {spec.epochs} epochs {how}"
    )
    fit(small, ctx, spec, label=artifact.name, teacher=teacher if spec.recovery == "distil" else None)
    ctx.info.setdefault("decomposition", {})[artifact.name] = record
    return artifact.evolve(small, stage="decompose", decomposition=record)


STAGE = Stage("decompose", DecomposeSpec, run)
