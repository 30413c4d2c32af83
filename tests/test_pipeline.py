"""The pipeline: artifacts, specs and per-layer maps, the registry, the run folder, and every stage in one tiny run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from keras_compress.errors import ConfigError, OutputError
from keras_compress.pipeline import Artifact, LayerMap, get_stage, stage_names
from keras_compress.pipeline.rundir import RunFolder
from keras_compress.pipeline.spec import build_spec


def test_layer_map_last_match_wins_null_skips_and_unmatched_patterns_are_named():
    m = LayerMap.of({"conv": 0.5, "^conv2$": 0.9, "^conv3$": None})
    assert m.resolve(["conv1", "conv2", "conv3", "fc"]) == {"conv1": 0.5, "conv2": 0.9}
    assert LayerMap.of(0.3).uniform == 0.3 and m.uniform is None
    assert LayerMap.of(m.to_data()) == m
    with pytest.raises(ConfigError, match=r"prune\.target_sparsity: pattern '\^fc9\$' matches no prunable layer; candidates: conv1, fc"):
        LayerMap.of({"^fc9$": 0.5}).select(["conv1", "fc"], "prune.target_sparsity", "prunable layer")


def test_every_registered_stage_has_a_valid_default_spec_and_a_kind():
    for name in stage_names():
        stage = get_stage(name)
        assert stage.name == name and dataclasses.is_dataclass(stage.spec)
        assert stage.takes in ("none", "keras", "tflite", "run") and stage.gives in ("keras", "tflite", "run")
        if name not in ("distil", "decompose"):  # distil needs a teacher, decompose a rank, energy or ratio
            assert build_spec(stage.spec, {}, name) == stage.spec()
    assert stage_names(takes="keras", gives="keras") == ["train", "distil", "prune", "prune_filters", "qat", "decompose", "cluster"]
    with pytest.raises(ConfigError, match="'sparsify': unknown stage; expected one of 'build', 'train'"):
        get_stage("sparsify")
    with pytest.raises(ConfigError, match=r"distil\.teacher: required"):
        build_spec(get_stage("distil").spec, {}, "distil")
    with pytest.raises(ConfigError, match="decompose: give exactly one of rank, energy, ratio"):
        build_spec(get_stage("decompose").spec, {}, "decompose")


def test_artifact_evolve_keeps_the_lineage():
    a = Artifact("s").evolve("m1", stage="build").evolve("m2", stage="train", keras_accuracy=0.9)
    assert a.stages == ("build", "train") and a.model == "m2" and a.meta["keras_accuracy"] == 0.9
    assert a.evolve(name="t").name == "t" and a.evolve(name="t").model == "m2"


def test_run_folder_records_cleans_and_refuses(tmp_path):
    first = RunFolder(tmp_path / "run", "one")
    first.write_bytes("tflite/a.tflite", b"x")
    first.write_bytes("summary.json", b"[]")
    assert json.loads((tmp_path / "run" / "manifest.json").read_text()) == {"recipe": "one", "files": ["tflite/a.tflite", "summary.json"]}
    (tmp_path / "run" / "mine.txt").write_text("not the run's")
    said = []
    RunFolder(tmp_path / "run", "two", said.append)
    assert said == [f"[run] removed the 2 file(s) of the earlier run of recipe 'one' from {tmp_path / 'run'}"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["manifest.json", "mine.txt"]
    # a manifest naming files outside the folder removes nothing outside it
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    (tmp_path / "run" / "manifest.json").write_text(json.dumps({"recipe": "x", "files": ["../precious.txt", "/etc/hostname"]}))
    RunFolder(tmp_path / "run", "three")
    assert outside.read_text() == "keep"
    # not ours: refused; a file: refused; a file in the way: refused; nothing written in any case
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1")
    with pytest.raises(OutputError, match="not empty and not a keras-compress run folder"):
        RunFolder(foreign, "x")
    assert [p.name for p in foreign.iterdir()] == ["data.csv"]
    with pytest.raises(OutputError, match="is a file; expected a folder"):
        RunFolder(foreign / "data.csv", "x")
    with pytest.raises(OutputError, match=r"data\.csv is a file"):
        RunFolder(foreign / "data.csv" / "sub", "x")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Digits at 8x8 (a few hundred images): a run of every stage in seconds."""
    from keras_compress.datasets import load_digits
    from keras_compress.pipeline import Context

    (x, y), (xt, yt) = load_digits(image_size=8)
    ctx = Context.create(((x[:320], y[:320]), (xt[:64], yt[:64])), tmp_path_factory.mktemp("tiny") / "run", name="tiny", quiet=True)
    return ctx


def _calls(*items):
    return [(name, build_spec(get_stage(name).spec, data, name)) for name, data in items]


@pytest.mark.slow
def test_every_stage_in_one_tiny_run(tiny):
    """build, train, distil, prune (per layer), prune_filters (per layer), qat (a layer left float), convert, measure, report."""
    from keras_compress.pipeline.run import describe_model, run_chain, run_stage

    ctx = tiny
    fit1 = {"epochs": 1, "batch_size": 64}
    teacher = run_chain(_calls(("build", {"width": 0.5}), ("train", fit1)), Artifact("teacher"), ctx)
    ctx.artifacts["teacher"] = describe_model(teacher, ctx)
    student = run_chain(_calls(("build", {"width": 0.25}), ("distil", {"teacher": "teacher", **fit1})), Artifact("student"), ctx)
    assert student.stages == ("build", "distil") and student.model.count_params() < teacher.model.count_params()

    pruned = run_chain(_calls(("prune", {"target_sparsity": {"conv": 0.5, "^fc$": 0.75, "^logits$": None}, "frequency": 1, **fit1})),
                       student.evolve(name="pruned"), ctx)
    k = {layer.name: layer.get_weights()[0] for layer in pruned.model.layers if layer.name in ("conv1", "fc", "logits")}
    assert [round(1 - np.count_nonzero(k[n]) / k[n].size, 2) for n in ("conv1", "fc", "logits")] == [0.5, 0.75, 0.0]

    small = run_chain(_calls(("prune_filters", {"fraction": {"^conv2$": 0.5, "^conv3$": 0.25}, **fit1})), teacher.evolve(name="small"), ctx)
    filters = {layer.name: layer.filters for layer in small.model.layers if layer.name.startswith("conv")}
    assert filters == {"conv1": 16, "conv2": 16, "conv3": 48}

    qat = run_chain(_calls(("qat", {"quantize": {"^logits$": False}, **fit1})), pruned.evolve(name="qat"), ctx)
    assert qat.meta["float_layers"] == ("logits",) and qat.stages[-1] == "qat"
    qat = describe_model(qat, ctx)
    assert qat.meta["sparsity"] >= 0.5  # zeros preserved: the chain went through prune

    for art, mode in ((qat, "int8"), (small, "float32")):
        conv = build_spec(get_stage("convert").spec, {"mode": mode, "calibration_samples": 16}, "convert")
        row = run_chain([("convert", conv), ("measure", get_stage("measure").spec(latency_runs=2, warmup=0))], art, ctx).meta["row"]
        assert row["mode"] == mode and (ctx.folder.path / row["file"]).stat().st_size == row["size_bytes"]
    assert [r["variant"] for r in ctx.rows] == ["qat", "small"] and ctx.rows[0]["edgetpu_mapped"] > 0
    run_stage("report", get_stage("report").spec(html=False), None, ctx)
    summary = json.loads((ctx.folder.path / "summary.json").read_text())
    assert [r["variant"] for r in summary] == ["qat", "small"]
    assert set(json.loads((ctx.folder.path / "manifest.json").read_text())["files"]) >= {
        "models/teacher.keras", "models/qat.keras", "tflite/qat_int8.tflite", "tflite/small_float32.tflite", "summary.json", "run.json"}
    assert {"teacher/build", "student/distil", "pruned/prune", "qat/qat"} <= set(ctx.timings)


def test_a_short_chain_converts_measures_and_records(tmp_path):
    """build -> prune -> convert -> measure through run_variant, the fast way (no training)."""
    from keras_compress.datasets import load_digits
    from keras_compress.pipeline import Context
    from keras_compress.pipeline.run import run_variant
    from keras_compress.recipes.recipe import StageCall, Variant

    (x, y), (xt, yt) = load_digits(image_size=8)
    ctx = Context.create(((x[:64], y[:64]), (xt[:32], yt[:32])), tmp_path / "run", name="short", quiet=True)
    prune = build_spec(get_stage("prune").spec, {"target_sparsity": 0.5, "epochs": 1, "batch_size": 64, "frequency": 1}, "prune")
    variant = Variant("v", (StageCall("build", get_stage("build").spec(width=0.125)), StageCall("prune", prune)))
    convert = get_stage("convert").spec(mode="float32")
    art = run_variant(variant, [convert], ctx, get_stage("measure").spec(latency_runs=1, warmup=0, edgetpu=False))
    assert art.stages == ("build", "prune") and art.meta["sparsity"] == pytest.approx(0.5, abs=0.01)
    (row,) = ctx.rows
    assert row["variant"] == "v" and row["mode"] == "float32" and row["file"] == "tflite/v_float32.tflite"
    assert row["sparsity"] == art.meta["sparsity"] and row["params"] == art.model.count_params()
    assert json.loads((ctx.folder.path / "manifest.json").read_text())["files"] == ["models/v.keras", "tflite/v_float32.tflite"]


def test_a_stage_refuses_the_wrong_kind_of_model(tiny):
    from keras_compress.pipeline.run import run_stage

    with pytest.raises(ConfigError, match="stage 'prune' takes a keras model; x holds tflite"):
        run_stage("prune", None, Artifact("x", b"TFL3"), tiny)
    with pytest.raises(ConfigError, match="matches no prunable layer of 'x'"):
        import keras

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc")])
        run_stage("prune", build_spec(get_stage("prune").spec, {"target_sparsity": {"^conv$": 0.5}}, "prune"), Artifact("x", model), tiny)


def test_same_build_stage_same_initial_weights(tiny):
    """The seeding rule: stage k of a chain runs with seed + k, so two builds of one spec start equal."""
    from keras_compress.pipeline.run import run_chain

    calls = _calls(("build", {"width": 0.25}))
    a = run_chain(calls, Artifact("a"), tiny).model.get_weights()
    b = run_chain(calls, Artifact("b"), tiny).model.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


NEW_STAGE = '''
"""``scale``: a stage written the documented way, to prove a new method needs nothing else."""
from dataclasses import dataclass

from keras_compress.pipeline import Artifact, LayerMap, Stage
from keras_compress.pipeline.spec import number, per_layer, setting


@dataclass(frozen=True, kw_only=True)
class ScaleSpec:
    factor: LayerMap = setting(per_layer(number(0.0, 10.0)), LayerMap.of(1.0))


def run(spec, artifact, ctx):
    import keras

    model = keras.models.clone_model(artifact.model)
    model.set_weights(artifact.model.get_weights())
    names = [layer.name for layer in model.layers if layer.weights]
    for name, factor in spec.factor.select(names, "scale.factor", "layer with weights").items():
        layer = model.get_layer(name)
        layer.set_weights([w * factor for w in layer.get_weights()])
    ctx.say(f"[scale] {artifact.name}: {spec.factor}")
    return artifact.evolve(model, stage="scale")


STAGE = Stage("scale", ScaleSpec, run)
'''


def test_a_new_stage_is_one_module_and_one_registry_entry(tmp_path, monkeypatch, tiny):
    """Write a stage module, add one registry line: recipes validate it, chains run it, per-layer maps reach it."""
    import sys

    from keras_compress.pipeline import registry
    from keras_compress.pipeline.run import run_chain
    from keras_compress.recipes.recipe import Recipe

    (tmp_path / "kc_scale_stage.py").write_text(NEW_STAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.STAGES, "scale", "kc_scale_stage")
    recipe = Recipe.from_dict({"name": "t", "variants": {"s": {"stages": [
        {"build": {"width": 0.125}}, {"scale": {"factor": {"^fc$": 0.0, "^logits$": 2.0}}}]}}})
    assert recipe.variants[0].stages[1].spec.factor.resolve(["fc", "logits"]) == {"fc": 0.0, "logits": 2.0}
    with pytest.raises(ConfigError, match=r"variants\.s\.stages\[1\]\.scale\.factor\['\^fc\$'\]: expected a finite number in \[0\.0, 10\.0\]"):
        Recipe.from_dict({"name": "t", "variants": {"s": {"stages": [{"build": {}}, {"scale": {"factor": {"^fc$": -1}}}]}}})
    art = run_chain(recipe.variants[0].stages, Artifact("s"), tiny)
    assert art.stages == ("build", "scale")
    assert not np.any(art.model.get_layer("fc").get_weights()[0])
    sys.modules.pop("kc_scale_stage", None)
