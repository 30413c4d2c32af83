"""Recipes: a compression run as data (YAML or JSON), validated into frozen dataclasses.

A recipe names the data and lists **variants**. Each variant is a chain of
stages (see :mod:`keras_compress.pipeline`) that starts from a ``build`` stage
or ``from`` an earlier variant's trained model, and has **outputs**: the
.tflite modes it is converted to and measured in (default: the recipe's
``convert.modes``), each a row of the table. A stage may name an earlier
variant as its ``teacher``. Every field is checked when the recipe is loaded;
a bad value raises one :class:`~keras_compress.errors.ConfigError` naming the
field (dotted, e.g. ``variants.student.stages[1].prune.target_sparsity``),
the allowed values and what was found. NaN and infinity are refused.

Schema (every top-level section but ``name`` and ``variants`` is optional)::

    name: digits_prune_qat          # a file name: the default output folder is runs/<name>
    seed: 0                         # stage k of a chain (from its root) runs with seed + k
    dataset: {name: digits, options: {}}
    distillation: {temperature: 4.0, alpha: 0.5, standardize: true, features: [], feature_weight: 1.0}
    convert: {modes: [float32, int8], target: cpu, calibration_samples: 200, input_type: null}
    measure: {latency_runs: 50, warmup: 10, num_threads: 1, edgetpu: true}
    report: {html: true}
    output_dir: null
    variants:
      student:
        stages:
          - build: {model: cnn, width: 0.5}
          - train: {epochs: 12}
      student_pruned:
        from: student
        stages:
          - prune: {target_sparsity: {"conv": 0.5, "^fc$": 0.8}, epochs: 4}
        outputs: [int8, {mode: float32, name: pruned_float}]

Example:
    >>> from keras_compress.recipes.recipe import Recipe
    >>> r = Recipe.from_dict({"name": "t", "variants": {"s": {"stages": [{"build": {"width": 0.5}}, {"train": {"epochs": 1}}]}}})
    >>> [c.stage for c in r.variants[0].stages], [o.mode for o in r.outputs_of(r.variants[0])]
    (['build', 'train'], ['int8'])
    >>> Recipe.from_dict({"name": "t", "variants": {"s": {"stages": [{"build": {}}]}}, "convert": {"target": "tpu"}})
    Traceback (most recent call last):
    ...
    keras_compress.errors.ConfigError: convert.target: expected one of 'cpu', 'edgetpu'; got 'tpu'
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from keras_compress.datasets import DATASET_NAMES as DATASETS
from keras_compress.errors import ConfigError
from keras_compress.pipeline.fit import DistillationSpec
from keras_compress.pipeline.registry import get_stage, stage_names
from keras_compress.pipeline.spec import (
    build_spec,
    choice,
    choices_text,
    file_name,
    integer,
    mapping,
    setting,
    spec_data,
    text,
)
from keras_compress.pipeline.stages.convert import IO_TYPES, MODES, QAT_MODES, TARGETS, ConvertSpec
from keras_compress.pipeline.stages.measure import MeasureSpec
from keras_compress.pipeline.stages.report import ReportSpec
from keras_compress.recipes.overrides import apply_overrides

__all__ = [
    "Recipe",
    "Variant",
    "StageCall",
    "DatasetSpec",
    "ConvertDefaults",
    "load_recipe",
    "bundled_recipes",
    "apply_overrides",
    "DATASETS",
]

RECIPES_DIR = Path(__file__).resolve().parent
_LEGACY = ("student", "teacher", "pruning", "qat")


def _dataset_name(where, v):
    if isinstance(v, str) and (v in DATASETS or os.path.isdir(v)):
        return v
    raise ConfigError(f"{where}: expected one of {choices_text(DATASETS)} or an existing folder of images; got {v!r}")


def _modes(where, v):
    v = [v] if isinstance(v, str) else v
    if not isinstance(v, (list, tuple)) or not v:
        raise ConfigError(f"{where}: expected a non-empty list of {choices_text(MODES)}; got {v!r}")
    return tuple(dict.fromkeys(choice(MODES)(f"{where}[{i}]", m) for i, m in enumerate(v)))


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """Which data: ``name`` (digits, shapes, a keras.datasets name, or a folder) and loader ``options``."""

    name: str = setting(_dataset_name, "digits")
    options: Mapping[str, Any] = setting(mapping, default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ConvertDefaults:
    """The recipe's ``convert`` section: default output modes, and how every output converts."""

    modes: tuple = setting(_modes, ("int8",))
    target: str = setting(choice(TARGETS), "cpu")
    calibration_samples: int = setting(integer(1, 100_000), 200)
    input_type: str | None = setting(choice(IO_TYPES, allow_none=True), None)

    def check(self, where: str) -> None:
        if self.target == "edgetpu" and self.modes != ("int8",):
            raise ConfigError(f"{where}.modes: target 'edgetpu' allows only ['int8']; got {list(self.modes)}")


@dataclass(frozen=True)
class StageCall:
    """One stage of a chain: its registered name and its validated spec."""

    stage: str
    spec: Any

    def to_data(self) -> dict:
        return {self.stage: spec_data(self.spec)}


@dataclass(frozen=True)
class Output:
    """One output of a variant: a conversion mode and an optional row name."""

    mode: str
    name: str | None = None

    def to_data(self) -> Any:
        return self.mode if self.name is None else {"mode": self.mode, "name": self.name}


@dataclass(frozen=True)
class Variant:
    """A named chain of stages, from a ``build`` stage or ``from`` an earlier variant, and its outputs.

    ``outputs`` is ``None`` for the recipe's ``convert.modes``; a QAT variant
    keeps only ``int8`` of those.
    """

    name: str
    stages: tuple[StageCall, ...]
    source: str | None = None
    outputs: tuple[Output, ...] | None = None

    def to_data(self) -> dict:
        out: dict[str, Any] = {"from": self.source} if self.source else {}
        out["stages"] = [c.to_data() for c in self.stages]
        if self.outputs is not None:
            out["outputs"] = [o.to_data() for o in self.outputs]
        return out

    def teachers(self) -> list[str]:
        return [c.spec.teacher for c in self.stages if getattr(c.spec, "teacher", None)]


_SECTIONS = {"dataset": DatasetSpec, "distillation": DistillationSpec, "convert": ConvertDefaults,
             "measure": MeasureSpec, "report": ReportSpec}


def _section(cls, data, where):
    return build_spec(cls, data, where)


def _stage_call(item, where: str) -> StageCall:
    chain = stage_names(takes="keras", gives="keras")
    if not isinstance(item, Mapping) or len(item) != 1:
        raise ConfigError(f"{where}: expected one stage as {{name: {{settings}}}}, e.g. {{train: {{epochs: 10}}}}; got {item!r}")
    (name, data), = item.items()
    if name not in ("build", *chain):
        hint = " (conversions are a variant's 'outputs')" if name in ("convert", "measure") else ""
        raise ConfigError(f"{where}: unknown stage {name!r}{hint}; expected one of {choices_text(('build', *chain))}")
    stage = get_stage(name)
    return StageCall(name, _section(stage.spec, data, f"{where}.{name}"))


def _output(item, where: str) -> Output:
    if isinstance(item, str):
        return Output(choice(MODES)(where, item))
    if isinstance(item, Mapping) and set(item) <= {"mode", "name"} and "mode" in item:
        name = file_name(f"{where}.name", item["name"]) if item.get("name") is not None else None
        return Output(choice(MODES)(f"{where}.mode", item["mode"]), name)
    raise ConfigError(f"{where}: expected a mode ({choices_text(MODES)}) or {{mode: <mode>, name: <row name>}}; got {item!r}")


def _variant(name, data, where: str, earlier: list[str]) -> Variant:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'stages' (and 'from', 'outputs'); got {data!r}")
    unknown = set(data) - {"from", "stages", "outputs"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown field; allowed fields of a variant: 'from', 'stages', 'outputs'")
    source = data.get("from")
    if source is not None and source not in earlier:
        raise ConfigError(f"{where}.from: expected a variant defined above ({choices_text(earlier) or 'none'}); got {source!r}")
    items = data.get("stages") or []
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}.stages: expected a list of stages; got {items!r}")
    stages = tuple(_stage_call(item, f"{where}.stages[{i}]") for i, item in enumerate(items))
    builds = [i for i, c in enumerate(stages) if c.stage == "build"]
    if source is None and builds[:1] != [0]:
        raise ConfigError(f"{where}.stages: a variant without 'from' starts with a 'build' stage")
    if (builds and builds != [0]) or (source is not None and builds):
        raise ConfigError(f"{where}.stages: 'build' may only start a variant that has no 'from'")
    for i, call in enumerate(stages):
        teacher = getattr(call.spec, "teacher", None)
        if teacher is not None and teacher not in earlier:
            raise ConfigError(f"{where}.stages[{i}].{call.stage}.teacher: expected a variant defined above "
                              f"({choices_text(earlier) or 'none'}); got {teacher!r}")
    outputs = data.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, (list, tuple)):
            raise ConfigError(f"{where}.outputs: expected a list of modes or {{mode, name}}; got {outputs!r}")
        outputs = tuple(_output(o, f"{where}.outputs[{i}]") for i, o in enumerate(outputs))
    return Variant(file_name(where, name), stages, source, outputs)


def _variants(data) -> tuple[Variant, ...]:
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"variants: expected a mapping of variant name -> {{from, stages, outputs}}; got {data!r}")
    out: list[Variant] = []
    for name, v in data.items():
        out.append(_variant(name, v, f"variants.{name}", [x.name for x in out]))
    return tuple(out)


@dataclass(frozen=True)
class Recipe:
    """A whole compression run. Build it with :meth:`from_dict`, :meth:`from_file` or :func:`load_recipe`.

    Attributes:
        name: run name (a file name; default output folder ``runs/<name>``).
        variants: the chains, in table order.
        seed: the run's seed (stage ``k`` of a chain runs with ``seed + k``).
        dataset, distillation, convert, measure, report: the sections.
        output_dir: output folder (``None``: ``runs/<name>``).
        source: the file the recipe came from, if any (relative model paths
            in it resolve against that file's folder).
    """

    name: str
    variants: tuple[Variant, ...]
    seed: int = 0
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    distillation: DistillationSpec = field(default_factory=DistillationSpec)
    convert: ConvertDefaults = field(default_factory=ConvertDefaults)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    output_dir: str | None = None
    source: str | None = field(default=None, compare=False)

    TOP_FIELDS = ("name", "seed", "dataset", "distillation", "convert", "measure", "report", "output_dir", "variants")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> "Recipe":
        """Validate ``data`` (as parsed from YAML/JSON) and build the recipe.

        Raises:
            ConfigError: the first bad field, by dotted name, with the allowed values.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"recipe: expected a mapping with fields {choices_text(cls.TOP_FIELDS)}; got {type(data).__name__}")
        if "variants" not in data and any(k in data for k in _LEGACY):
            raise ConfigError(
                "recipe: this is the old form (top-level 'student', 'teacher', 'pruning', 'qat'); a recipe now lists "
                "'variants', each a chain of stages: see the bundled digits_prune_qat.yaml and the README's Recipes section"
            )
        for key in data:
            if key not in cls.TOP_FIELDS:
                raise ConfigError(f"{key}: unknown field; allowed top-level fields: {choices_text(cls.TOP_FIELDS)}")
        for key, example in (("name", "a short run name, e.g. 'digits_prune_qat'"), ("variants", "see the README's Recipes")):
            if key not in data:
                raise ConfigError(f"{key}: required ({example})")
        kwargs: dict[str, Any] = {"name": file_name("name", data["name"]), "source": source}
        if "seed" in data:
            kwargs["seed"] = integer(0, 2**31 - 1)("seed", data["seed"])
        for key, spec in _SECTIONS.items():
            if key in data:
                kwargs[key] = _section(spec, data[key], key)
        if data.get("output_dir") is not None:
            kwargs["output_dir"] = text("output_dir", data["output_dir"])
        recipe = cls(variants=_variants(data["variants"]), **kwargs)
        recipe._check_outputs()
        return recipe

    def _check_outputs(self) -> None:
        seen: dict[str, str] = {}
        for v in self.variants:
            qat = "qat" in self.lineage(v.name)
            for i, o in enumerate(v.outputs or ()):
                if qat and o.mode not in QAT_MODES:
                    raise ConfigError(f"variants.{v.name}.outputs[{i}]: a quantization-aware variant converts to 'int8' "
                                      f"only (or {' / '.join(map(repr, QAT_MODES[1:]))} when trained with "
                                      f"weight_bits: 4); got {o.mode!r}")
            for spec in self.outputs_of(v):
                key = spec.name or f"{v.name}_{spec.mode}"
                if key in seen:
                    raise ConfigError(f"variants.{v.name}.outputs: the row {key!r} is also an output of {seen[key]!r}; give it another name")
                seen[key] = v.name

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"{name!r}: no such variant; the recipe has {choices_text(v.name for v in self.variants)}")

    def lineage(self, name: str) -> list[str]:
        """The stage names applied to variant ``name``'s model since its root, in order."""
        v = self.variant(name)
        return (self.lineage(v.source) if v.source else []) + [c.stage for c in v.stages]

    def outputs_of(self, variant: Variant) -> tuple[ConvertSpec, ...]:
        """The ``convert`` specs of ``variant``'s outputs (the recipe's modes by default; int8 only for QAT)."""
        c = self.convert
        if variant.outputs is not None:
            outputs = variant.outputs
        else:
            qat = "qat" in self.lineage(variant.name)
            outputs = tuple(Output(m) for m in c.modes if not qat or m == "int8")
        return tuple(ConvertSpec(mode=o.mode, name=o.name, target=c.target, calibration_samples=c.calibration_samples,
                                 input_type=c.input_type) for o in outputs)

    @classmethod
    def from_file(cls, path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> "Recipe":
        """Load a ``.yaml``/``.yml`` or ``.json`` recipe, apply dotted ``overrides``, validate."""
        from keras_compress.recipes.files import read_recipe_file

        path = Path(path)
        data = read_recipe_file(path)
        if overrides:
            data = apply_overrides(data, overrides)
        try:
            return cls.from_dict(data, source=str(path))
        except ConfigError as e:
            raise ConfigError(f"{path.name}: {e}") from None

    def to_dict(self) -> dict:
        """A plain dict (YAML/JSON-ready) that :meth:`from_dict` reads back to an equal recipe."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        for key in _SECTIONS:
            out[key] = spec_data(getattr(self, key))
        out["output_dir"] = self.output_dir
        out["variants"] = {v.name: v.to_data() for v in self.variants}
        return out

    def replace(self, overrides: Mapping[str, Any]) -> "Recipe":
        """A new, re-validated recipe with dotted-key ``overrides`` (e.g. ``{"variants.student.stages.1.train.epochs": 1}``)."""
        return Recipe.from_dict(apply_overrides(self.to_dict(), overrides), source=self.source)

    def scale_epochs(self, factor: float) -> "Recipe":
        """Every stage's ``epochs`` times ``factor``, rounded, at least 1 (the demo's ``--epochs``)."""

        def scaled(call: StageCall) -> StageCall:
            epochs = getattr(call.spec, "epochs", None)
            if epochs is None:
                return call
            return StageCall(call.stage, dataclasses.replace(call.spec, epochs=max(1, round(epochs * factor))))

        variants = tuple(dataclasses.replace(v, stages=tuple(scaled(c) for c in v.stages)) for v in self.variants)
        return dataclasses.replace(self, variants=variants)

    def select(self, names) -> "Recipe":
        """Only the variants ``names`` (and those they need, which then have no outputs)."""
        wanted = list(names)
        for n in wanted:
            self.variant(n)
        needed, todo = set(), list(wanted)
        while todo:
            v = self.variant(todo.pop())
            if v.name not in needed:
                needed.add(v.name)
                todo += [*([v.source] if v.source else []), *v.teachers()]
        kept = tuple(v if v.name in wanted else dataclasses.replace(v, outputs=()) for v in self.variants if v.name in needed)
        return dataclasses.replace(self, variants=kept)

    def resolve_path(self, p: str) -> str:
        """``p`` if it exists from the current folder, else relative to the recipe file's folder."""
        from keras_compress.recipes.files import resolve_relative

        return resolve_relative(p, Path(self.source).parent if self.source else None)


def bundled_recipes() -> dict[str, Path]:
    """The example recipes shipped with the package, by name (``demo``, ``digits_prune_qat``, ``shapes_distill``)."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


def load_recipe(recipe: "str | os.PathLike | Mapping | Recipe", overrides: Mapping[str, Any] | None = None) -> Recipe:
    """A :class:`Recipe` from a file path, a bundled recipe name, a dict or a Recipe.

    Example:
        >>> load_recipe("digits_prune_qat").variant("student_pruned").stages[0].spec.target_sparsity.uniform
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
            raise ConfigError(f"recipe file {str(recipe)!r} does not exist (bundled recipes: {choices_text(bundled) or 'none'})")
    return Recipe.from_file(path, overrides)
