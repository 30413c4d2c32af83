"""Recipes: small, validated configs (frozen dataclasses) loaded from YAML or JSON.

A recipe names the dataset, the teacher and the student (a builder name with
a width multiplier, or a saved ``.keras`` path), the pruning schedule, QAT on
or off, the distillation settings, and the conversion modes and target. Every
field is checked when the recipe is loaded; a bad value raises one
:class:`~keras_compress.errors.ConfigError` whose message names the field
(dotted, e.g. ``pruning.schedule``), the allowed values and what was found.

Example YAML (every section but ``name`` and ``student`` is optional)::

    name: shapes_distill
    seed: 0
    dataset: {name: shapes}
    teacher: {model: cnn, width: 1.0, epochs: 15}
    student: {model: cnn, width: 0.375, epochs: 15}
    distillation: {enabled: true, temperature: 4.0, alpha: 0.5}
    pruning: {enabled: true, target_sparsity: 0.5, epochs: 4}
    qat: {enabled: true, epochs: 2}
    convert: {modes: [int8], target: cpu}

Example:
    >>> from keras_compress.recipes.recipe import Recipe
    >>> r = Recipe.from_dict({"name": "t", "student": {"model": "cnn", "width": 0.5}})
    >>> r.student.width, r.convert.modes
    (0.5, ('int8',))
    >>> Recipe.from_dict({"name": "t", "student": {"model": "cnn"}, "convert": {"target": "tpu"}})
    Traceback (most recent call last):
    ...
    keras_compress.errors.ConfigError: convert.target: expected one of 'cpu', 'edgetpu'; got 'tpu'
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from keras_compress.errors import ConfigError

__all__ = [
    "Recipe",
    "DatasetSpec",
    "ModelSpec",
    "DistillationSpec",
    "PruningSpec",
    "QATSpec",
    "ConvertSpec",
    "load_recipe",
    "bundled_recipes",
    "apply_overrides",
    "MODES",
    "TARGETS",
    "DATASETS",
]

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
TARGETS = ("cpu", "edgetpu")
DATASETS = ("digits", "shapes", "mnist", "fashion_mnist", "cifar10")
SCHEDULES = ("polynomial", "constant")
IO_TYPES = ("int8", "uint8", "float32")
BUILDER_NAMES = ("cnn", "mobilenet_v2")

RECIPES_DIR = Path(__file__).resolve().parent


def _choices(values) -> str:
    return ", ".join(repr(v) for v in values)


# --------------------------------------------------------------- field checks
# Each check takes (field path, value) and returns the normalised value or raises.


def _bool(where, v):
    if not isinstance(v, bool):
        raise ConfigError(f"{where}: expected true or false; got {v!r}")
    return v


def _int(lo=None, hi=None):
    def check(where, v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: expected an integer{_range_text(lo, hi)}; got {v!r}")
        _in_range(where, v, lo, hi, "an integer")
        return v

    return check


def _float(lo=None, hi=None, lo_open=False, hi_open=False):
    def check(where, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: expected a number{_range_text(lo, hi, lo_open, hi_open)}; got {v!r}")
        v = float(v)
        _in_range(where, v, lo, hi, "a number", lo_open, hi_open)
        return v

    return check


def _range_text(lo, hi, lo_open=False, hi_open=False):
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi}"
    return ""


def _in_range(where, v, lo, hi, what, lo_open=False, hi_open=False):
    bad = (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi)))
    if bad:
        raise ConfigError(f"{where}: expected {what}{_range_text(lo, hi, lo_open, hi_open)}; got {v!r}")


def _choice(values, allow_none=False):
    def check(where, v):
        if v is None and allow_none:
            return None
        if v not in values:
            extra = " or null" if allow_none else ""
            raise ConfigError(f"{where}: expected one of {_choices(values)}{extra}; got {v!r}")
        return v

    return check


def _str(where, v):
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: expected a non-empty string; got {v!r}")
    return v


def _opt_str(where, v):
    return None if v is None else _str(where, v)


def _model_ref(where, v):
    if isinstance(v, str) and (v in BUILDER_NAMES or v.endswith(".keras")):
        return v
    raise ConfigError(f"{where}: expected one of {_choices(BUILDER_NAMES)} or a path to a .keras file; got {v!r}")


def _dataset_name(where, v):
    if isinstance(v, str) and (v in DATASETS or os.path.isdir(v)):
        return v
    raise ConfigError(f"{where}: expected one of {_choices(DATASETS)} or an existing folder of images; got {v!r}")


def _mapping(where, v):
    if not isinstance(v, Mapping):
        raise ConfigError(f"{where}: expected a mapping of loader options; got {v!r}")
    return dict(v)


def _modes(where, v):
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise ConfigError(f"{where}: expected a non-empty list of {_choices(MODES)}; got {v!r}")
    for i, m in enumerate(v):
        if m not in MODES:
            raise ConfigError(f"{where}[{i}]: expected one of {_choices(MODES)}; got {m!r}")
    return tuple(dict.fromkeys(v))


def _features(where, v):
    if not isinstance(v, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of {{teacher: <layer>, student: <layer>}}; got {v!r}")
    out = []
    for i, item in enumerate(v):
        if isinstance(item, Mapping):
            unknown = set(item) - {"teacher", "student"}
            if unknown or not {"teacher", "student"} <= set(item):
                raise ConfigError(
                    f"{where}[{i}]: expected exactly the keys 'teacher' and 'student' (layer names); got {dict(item)!r}"
                )
            pair = (item["teacher"], item["student"])
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pair = tuple(item)
        else:
            raise ConfigError(f"{where}[{i}]: expected {{teacher: <layer>, student: <layer>}}; got {item!r}")
        out.append((_str(f"{where}[{i}].teacher", pair[0]), _str(f"{where}[{i}].student", pair[1])))
    return tuple(out)


def _spec(check, **kw):
    return field(metadata={"check": check}, **kw)


# ----------------------------------------------------------------- sections


@dataclass(frozen=True)
class DatasetSpec:
    """Which data: ``name`` (digits, shapes, a keras.datasets name, or a folder) and loader ``options``."""

    name: str = _spec(_dataset_name, default="digits")
    options: Mapping[str, Any] = _spec(_mapping, default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """A model: builder name (``cnn``, ``mobilenet_v2``) and width, or a ``.keras`` path; its training."""

    model: str = _spec(_model_ref, default="cnn")
    width: float = _spec(_float(0.0, 8.0, lo_open=True), default=1.0)
    epochs: int = _spec(_int(0, 10_000), default=10)
    batch_size: int = _spec(_int(1, 65_536), default=64)
    learning_rate: float = _spec(_float(0.0, 1.0, lo_open=True), default=1e-3)


@dataclass(frozen=True)
class DistillationSpec:
    """Hinton logits distillation (``temperature``, ``alpha`` = label-loss weight) plus optional feature pairs.

    ``standardize`` z-scores both models' logits per sample before the
    temperature (Sun et al., CVPR 2024), so a teacher with very large logits
    still gives soft targets the student can match.

    ``compare_scratch`` also trains the same student from scratch, as a baseline row.
    """

    enabled: bool = _spec(_bool, default=False)
    temperature: float = _spec(_float(0.0, 100.0, lo_open=True), default=4.0)
    alpha: float = _spec(_float(0.0, 1.0), default=0.5)
    standardize: bool = _spec(_bool, default=True)
    features: tuple = _spec(_features, default=())
    feature_weight: float = _spec(_float(0.0, None), default=1.0)
    compare_scratch: bool = _spec(_bool, default=True)


@dataclass(frozen=True)
class PruningSpec:
    """Magnitude pruning of the trained student: fine-tune ``epochs`` while sparsity ramps to ``target_sparsity``.

    The ramp ends after two thirds of the pruning steps (``polynomial``), or
    the target applies from the first step (``constant``); masks update every
    ``frequency`` steps.
    """

    enabled: bool = _spec(_bool, default=False)
    target_sparsity: float = _spec(_float(0.0, 1.0, hi_open=True), default=0.5)
    initial_sparsity: float = _spec(_float(0.0, 1.0, hi_open=True), default=0.0)
    schedule: str = _spec(_choice(SCHEDULES), default="polynomial")
    epochs: int = _spec(_int(1, 10_000), default=3)
    frequency: int = _spec(_int(1, 1_000_000), default=20)
    learning_rate: float = _spec(_float(0.0, 1.0, lo_open=True), default=5e-4)


@dataclass(frozen=True)
class QATSpec:
    """Quantization-aware fine-tuning of the (pruned) student; pruning zeros are preserved."""

    enabled: bool = _spec(_bool, default=False)
    epochs: int = _spec(_int(1, 10_000), default=2)
    learning_rate: float = _spec(_float(0.0, 1.0, lo_open=True), default=1e-4)


@dataclass(frozen=True)
class ConvertSpec:
    """TFLite conversion: ``modes``, ``target`` (cpu / edgetpu), calibration size, int8 I/O type."""

    modes: tuple = _spec(_modes, default=("int8",))
    target: str = _spec(_choice(TARGETS), default="cpu")
    calibration_samples: int = _spec(_int(1, 100_000), default=200)
    input_type: str | None = _spec(_choice(IO_TYPES, allow_none=True), default=None)
    latency_runs: int = _spec(_int(1, 100_000), default=50)


_SECTIONS = {
    "dataset": DatasetSpec,
    "teacher": ModelSpec,
    "student": ModelSpec,
    "distillation": DistillationSpec,
    "pruning": PruningSpec,
    "qat": QATSpec,
    "convert": ConvertSpec,
}


def _build(cls, data, where):
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with fields {_choices(f.name for f in dataclasses.fields(cls))}; got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown field; allowed fields of {where}: {_choices(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = f.metadata["check"](f"{where}.{f.name}", data[f.name])
    return cls(**kwargs)


@dataclass(frozen=True)
class Recipe:
    """A whole compression run. Build it with :meth:`from_dict`, :meth:`from_file` or :func:`load_recipe`.

    Attributes:
        name: run name (default output folder ``runs/<name>``).
        seed: seed of weights and data order.
        dataset, teacher, student, distillation, pruning, qat, convert: the sections.
        output_dir: output folder (``None``: ``runs/<name>``).
        source: the file the recipe came from, if any (relative paths in it
            resolve against that file's folder when they do not exist from
            the current one).
    """

    name: str
    student: ModelSpec
    seed: int = 0
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    teacher: ModelSpec | None = None
    distillation: DistillationSpec = field(default_factory=DistillationSpec)
    pruning: PruningSpec = field(default_factory=PruningSpec)
    qat: QATSpec = field(default_factory=QATSpec)
    convert: ConvertSpec = field(default_factory=ConvertSpec)
    output_dir: str | None = None
    source: str | None = field(default=None, compare=False)

    TOP_FIELDS = ("name", "seed", "dataset", "teacher", "student", "distillation", "pruning", "qat", "convert", "output_dir")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> "Recipe":
        """Validate ``data`` (as parsed from YAML/JSON) and build the recipe.

        Raises:
            ConfigError: the first bad field, by dotted name, with the allowed values.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"recipe: expected a mapping with fields {_choices(cls.TOP_FIELDS)}; got {type(data).__name__}")
        for key in data:
            if key not in cls.TOP_FIELDS:
                raise ConfigError(f"{key}: unknown field; allowed top-level fields: {_choices(cls.TOP_FIELDS)}")
        if "name" not in data:
            raise ConfigError("name: required (a short run name, e.g. 'digits_prune_qat')")
        name = _str("name", data["name"])
        if "student" not in data:
            raise ConfigError("student: required (e.g. {model: cnn, width: 0.5, epochs: 10})")
        kwargs: dict[str, Any] = {"name": name, "source": source}
        if "seed" in data:
            kwargs["seed"] = _int(0, 2**31 - 1)("seed", data["seed"])
        for key, spec in _SECTIONS.items():
            if key in data and not (key == "teacher" and data[key] is None):
                kwargs[key] = _build(spec, data[key], key)
        if "output_dir" in data:
            kwargs["output_dir"] = _opt_str("output_dir", data["output_dir"])
        recipe = cls(**kwargs)
        recipe._check_consistency()
        return recipe

    def _check_consistency(self) -> None:
        if self.distillation.enabled:
            if self.teacher is None:
                raise ConfigError("teacher: required when distillation.enabled is true (e.g. {model: cnn, width: 1.0, epochs: 15})")
            if self.teacher.model in BUILDER_NAMES and self.teacher.epochs < 1:
                raise ConfigError(
                    f"teacher.epochs: expected an integer >= 1 when teacher.model is the builder {self.teacher.model!r} "
                    "(an untrained teacher teaches nothing); got 0"
                )
        elif self.distillation.features:
            raise ConfigError("distillation.features: set only when distillation.enabled is true")
        if self.student.model in BUILDER_NAMES and self.student.epochs < 1:
            raise ConfigError(
                f"student.epochs: expected an integer >= 1 when student.model is the builder {self.student.model!r}; got 0"
            )
        if self.pruning.enabled and self.pruning.initial_sparsity > self.pruning.target_sparsity:
            raise ConfigError(
                f"pruning.initial_sparsity: expected a number <= pruning.target_sparsity ({self.pruning.target_sparsity}); "
                f"got {self.pruning.initial_sparsity}"
            )
        if self.convert.target == "edgetpu" and self.convert.modes != ("int8",):
            raise ConfigError(f"convert.modes: target 'edgetpu' allows only ['int8']; got {list(self.convert.modes)}")
        if self.qat.enabled and "int8" not in self.convert.modes:
            raise ConfigError(f"convert.modes: qat.enabled needs 'int8' among the modes; got {list(self.convert.modes)}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> "Recipe":
        """Load a ``.yaml``/``.yml`` or ``.json`` recipe, apply dotted ``overrides``, validate."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe file {str(path)!r} does not exist")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
        elif path.suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON: {e}") from None
        else:
            raise ConfigError(f"recipe file {str(path)!r}: expected a .yaml, .yml or .json file; got {path.suffix or 'no suffix'!r}")
        if overrides:
            data = apply_overrides(data, overrides)
        try:
            return cls.from_dict(data, source=str(path))
        except ConfigError as e:
            raise ConfigError(f"{path.name}: {e}") from None

    def to_dict(self) -> dict:
        """A plain dict (YAML/JSON-ready) that :meth:`from_dict` reads back to an equal recipe."""
        out = {}
        for key in self.TOP_FIELDS:
            v = getattr(self, key)
            if dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)
                for k, x in list(v.items()):
                    if isinstance(x, tuple):
                        v[k] = [list(i) if isinstance(i, tuple) else i for i in x]
            out[key] = v
        return out

    def replace(self, overrides: Mapping[str, Any]) -> "Recipe":
        """A new, re-validated recipe with dotted-key ``overrides`` (e.g. ``{"student.epochs": 1}``)."""
        return Recipe.from_dict(apply_overrides(self.to_dict(), overrides), source=self.source)

    def resolve_path(self, p: str) -> str:
        """``p`` if it exists from the current folder, else relative to the recipe file's folder."""
        if os.path.exists(p) or os.path.isabs(p) or self.source is None:
            return p
        candidate = Path(self.source).parent / p
        return str(candidate) if candidate.exists() else p


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """Copy of ``data`` with dotted keys set, e.g. ``{"dataset.options.n_train": 200}``.

    Example:
        >>> apply_overrides({"a": {"b": 1}}, {"a.c": 2, "d": 3})
        {'a': {'b': 1, 'c': 2}, 'd': 3}
    """
    out = copy.deepcopy(dict(data))
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def bundled_recipes() -> dict[str, Path]:
    """The example recipes shipped with the package, by name."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


def load_recipe(recipe: "str | os.PathLike | Mapping | Recipe", overrides: Mapping[str, Any] | None = None) -> Recipe:
    """A :class:`Recipe` from a file path, a bundled recipe name, a dict or a Recipe.

    Bundled names: see :func:`bundled_recipes` (``digits_prune_qat``, ``shapes_distill``).

    Example:
        >>> load_recipe("digits_prune_qat").pruning.target_sparsity
        0.5
    """
    if isinstance(recipe, Recipe):
        return recipe.replace(overrides) if overrides else recipe
    if isinstance(recipe, Mapping):
        return Recipe.from_dict(apply_overrides(recipe, overrides or {}))
    if not isinstance(recipe, (str, os.PathLike)):
        raise ConfigError(f"recipe: expected a file path, a bundled recipe name, a dict or a Recipe; got {type(recipe).__name__}")
    path = Path(recipe)
    if not path.exists():
        bundled = bundled_recipes()
        stem = path.name[: -len(path.suffix)] if path.suffix in (".yaml", ".yml", ".json") else path.name
        if str(recipe) == path.name and stem in bundled:
            path = bundled[stem]
        else:
            raise ConfigError(
                f"recipe file {str(recipe)!r} does not exist (bundled recipes: {_choices(bundled) or 'none'})"
            )
    return Recipe.from_file(path, overrides)
