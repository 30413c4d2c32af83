"""Recipes: validation (one ConfigError naming field, allowed values and value), files, overrides, builders,
and the bundled recipes end to end with reduced epochs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from keras_compress.errors import ConfigError
from keras_compress.recipes import bundled_recipes, load_recipe
from keras_compress.recipes.recipe import Recipe, apply_overrides

BASE = {
    "name": "t",
    "variants": {
        "s": {"stages": [{"build": {"model": "cnn", "width": 0.5}}, {"train": {"epochs": 1}}]},
        "p": {"from": "s", "stages": [{"prune": {"target_sparsity": 0.5}}]},
    },
}
S, P = "variants.s.stages", "variants.p.stages"


def _with(**overrides):
    return apply_overrides(BASE, overrides)


@pytest.mark.parametrize(
    "overrides, field, allowed",
    [
        ({"convert.target": "tpu"}, "convert.target", "'cpu', 'edgetpu'"),
        ({"convert.modes": ["int8", "int4"]}, "convert.modes[1]", "'float32', 'float16', 'dynamic', 'int8', 'int16x8'"),
        ({f"{P}.0.prune.schedule": "cubic"}, f"{P}[0].prune.schedule", "'polynomial', 'constant'"),
        ({f"{P}.0.prune.target_sparsity": 1.0}, f"{P}[0].prune.target_sparsity", "in [0.0, 1.0)"),
        ({f"{P}.0.prune.target_sparsity": {"conv": 1.5}}, f"{P}[0].prune.target_sparsity['conv']", "in [0.0, 1.0)"),
        ({f"{P}.0.prune.target_sparsity": {"conv[": 0.5}}, f"{P}[0].prune.target_sparsity", "not a valid regular expression"),
        ({"distillation.alpha": -0.1}, "distillation.alpha", "in [0.0, 1.0]"),
        ({"distillation.temperature": 0}, "distillation.temperature", "in (0.0, 100.0]"),
        ({f"{S}.0.build.model": "resnet"}, f"{S}[0].build.model", "'cnn', 'mobilenet_v2' or a path to a .keras file"),
        ({f"{S}.1.train.epochs": 2.5}, f"{S}[1].train.epochs", "an integer"),
        ({f"{S}.0.build.widht": 0.5}, f"{S}[0].build.widht", "allowed fields of"),
        ({"dataset.name": "imagenet"}, "dataset.name", "'digits', 'shapes'"),
        ({f"{S}.1": {"sparsify": {}}}, f"{S}[1]", "unknown stage 'sparsify'"),
        ({f"{S}.1": {"convert": {}}}, f"{S}[1]", "outputs"),
        ({"convert.input_type": "int16"}, "convert.input_type", "'int8', 'uint8', 'float32' or null"),
        ({"distillation.features": [{"teacher": "conv3"}]}, "distillation.features[0]", "'teacher' and 'student'"),
        ({"outptu_dir": "x"}, "outptu_dir", "allowed top-level fields"),
        ({"variants.p.from": "q"}, "variants.p.from", "a variant defined above ('s')"),
        ({f"{P}.0.prune.teacher": "p"}, f"{P}[0].prune.teacher", "a variant defined above ('s')"),
        ({"variants.p.stages": [{"build": {}}]}, "variants.p.stages", "'build' may only start a variant that has no 'from'"),
        ({"variants.s.stages": [{"train": {}}]}, "variants.s.stages", "starts with a 'build' stage"),
        ({"convert.target": "edgetpu", "convert.modes": ["int8", "float32"]}, "convert.modes", "only ['int8']"),
        ({"variants.q": {"from": "p", "stages": [{"qat": {}}], "outputs": ["float32"]}}, "variants.q.outputs[0]", "'int8' only"),
        ({"variants.p.outputs": [{"mode": "int8", "name": "s_int8"}]}, "variants.p.outputs", "also an output of 's'"),
    ],
)
def test_bad_recipe_gets_one_error_naming_field_allowed_values_and_value(overrides, field, allowed):
    with pytest.raises(ConfigError) as info:
        Recipe.from_dict(_with(**overrides))
    msg = str(info.value)
    assert msg.startswith(f"{field}:"), msg
    assert allowed in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "key, value",
    [
        (f"{S}.1.train.learning_rate", float("nan")),
        (f"{P}.0.prune.target_sparsity", float("nan")),
        (f"{S}.0.build.width", float("nan")),
        (f"{S}.0.build.width", float("inf")),
        (f"{P}.0.prune.target_sparsity", {"conv": float("-inf")}),
        ("distillation.temperature", float("inf")),
    ],
)
def test_nan_and_infinity_are_refused_with_the_field_name(key, value):
    with pytest.raises(ConfigError, match=r"expected a finite number.*got (nan|inf|-inf)$") as info:
        Recipe.from_dict(_with(**{key: value}))
    field = key.replace(".0.", "[0].").replace(".1.", "[1].")
    assert str(info.value).startswith(field), str(info.value)


def test_nan_in_a_yaml_file_names_the_file_and_the_field(tmp_path):
    bad = tmp_path / "nan.yaml"
    bad.write_text("name: x\nvariants:\n  s:\n    stages:\n      - build: {}\n      - train: {learning_rate: .nan}\n")
    with pytest.raises(ConfigError, match=r"^nan\.yaml: variants\.s\.stages\[1\]\.train\.learning_rate: expected a finite number"):
        load_recipe(bad)


@pytest.mark.parametrize("name", ["../../../somewhere", "a/b", "..", ".hidden", "", "x" * 101, "a\\b", 3])
def test_recipe_and_variant_names_are_file_names(name):
    with pytest.raises(ConfigError, match=r"^name: expected a file name"):
        Recipe.from_dict(_with(name=name))
    data = dict(BASE, variants={name: BASE["variants"]["s"]}) if isinstance(name, str) else None
    if data is not None:
        with pytest.raises(ConfigError, match="expected a file name"):
            Recipe.from_dict(data)


def test_old_recipe_form_gets_a_clear_error():
    old = {"name": "x", "student": {"model": "cnn"}, "pruning": {"enabled": True}}
    with pytest.raises(ConfigError, match="old form .*'variants'.*digits_prune_qat.yaml"):
        Recipe.from_dict(old)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: {s: {stages: [build: {}]}}\nconvert: {target: tpu}\n")
    with pytest.raises(ConfigError, match=r"^bad\.yaml: convert\.target: expected one of 'cpu', 'edgetpu'; got 'tpu'$"):
        load_recipe(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(broken)
    with pytest.raises(ConfigError, match="does not exist .*bundled recipes: 'demo', 'digits_prune_qat', 'shapes_distill'"):
        load_recipe(tmp_path / "missing.yaml")
    txt = tmp_path / "r.txt"
    txt.write_text("{}")
    with pytest.raises(ConfigError, match=r"expected a \.yaml, \.yml or \.json file"):
        load_recipe(txt)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_recipe(latin)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_recipe(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_recipe_file(tmp_path):
    locked = tmp_path / "locked.yaml"
    locked.write_text("name: x\n")
    locked.chmod(0)
    with pytest.raises(ConfigError, match="cannot read the recipe"):
        load_recipe(locked)


def test_json_yaml_roundtrip_overrides_and_epoch_scaling(tmp_path):
    r = load_recipe("shapes_distill")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(r.to_dict()))
    again = load_recipe(path)
    assert again == r
    small = again.replace({"variants.student_scratch.stages.1.train.epochs": 1, "dataset.options": {"n_train": 10}})
    assert small.variant("student_scratch").stages[1].spec.epochs == 1 and small.dataset.options == {"n_train": 10}
    assert small.distillation == r.distillation
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        r.replace({"variants.student_scratch.stages.1.train.epochs": -1})
    with pytest.raises(ConfigError, match="is a list of 2; expected an index"):
        r.replace({"variants.teacher.stages.train.epochs": 1})
    tenth = r.scale_epochs(0.1)
    assert [c.spec.epochs for v in tenth.variants for c in v.stages if hasattr(c.spec, "epochs")] == [3, 2, 2, 1, 1]


def test_select_keeps_what_a_variant_needs():
    r = load_recipe("shapes_distill").select(["student_distilled_pruned"])
    assert [v.name for v in r.variants] == ["teacher", "student_distilled", "student_distilled_pruned"]
    assert [len(r.outputs_of(v)) for v in r.variants] == [0, 0, 1]
    with pytest.raises(ConfigError, match="no such variant"):
        load_recipe("demo").select(["nope"])


def test_bundled_recipes_are_valid_and_int8():
    names = bundled_recipes()
    assert set(names) == {"demo", "digits_prune_qat", "shapes_distill"}
    for name in names:
        r = load_recipe(name)
        # every variant deploys to int8, or (the demo's int4 rows) below it through AI Edge Quantizer
        assert all(any(o.mode in ("int8", "int4_weights", "int4_int8") for o in r.outputs_of(v)) for v in r.variants)
    d = load_recipe("shapes_distill")
    assert d.distillation.standardize and d.variant("student_distilled").stages[1].spec.teacher == "teacher"
    assert [o.mode for o in d.outputs_of(d.variant("student_distilled_pruned_qat"))] == ["int8"]
    q = load_recipe("digits_prune_qat")
    assert [o.mode for o in q.outputs_of(q.variant("student_pruned_qat"))] == ["int8"]  # float32 dropped for QAT


def test_loading_a_recipe_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from keras_compress.recipes import load_recipe; load_recipe('demo'); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_builders_width_names_dropout_and_saved_model(tmp_path):
    from keras_compress.recipes.builders import build_model

    big = build_model("cnn", (32, 32, 3), 10, width=1.0)
    small = build_model("cnn", (32, 32, 3), 10, width=0.375)
    assert 4 <= big.count_params() / small.count_params() <= 8
    assert [layer.name for layer in big.layers] == [layer.name for layer in small.layers]
    assert "dropout" in [layer.name for layer in build_model("cnn", (32, 32, 1), 10, dropout=0.2).layers]
    mb = build_model("mobilenet_v2", (32, 32, 3), 10, width=0.5)
    assert mb.output.shape[-1] == 10 and any(type(layer).__name__ == "DepthwiseConv2D" for layer in mb.layers)
    path = tmp_path / "m.keras"
    small.save(path)
    loaded = build_model(str(path), (32, 32, 3), 10)
    assert loaded.count_params() == small.count_params()
    with pytest.raises(ConfigError, match="outputs 10 classes"):
        build_model(str(path), (32, 32, 3), 5)
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(str(tmp_path / "nope.keras"), (32, 32, 3), 10)
    junk = tmp_path / "junk.keras"
    junk.write_text("junk")
    with pytest.raises(ConfigError, match="could not load"):
        build_model(str(junk), (32, 32, 3), 10)


def _check_run(out, rows, variants):
    import edgetpu

    assert [r["variant"] for r in rows] == variants
    for row in rows:
        blob = (out / row["file"]).read_bytes()
        if row["mode"] == "int8":
            assert edgetpu.make_interpreter(blob).get_input_details()[0]["dtype"] == np.int8
            assert row["edgetpu_mapped"] == 1.0
        assert 0.0 <= row["accuracy"] <= 1.0 and row["size_bytes"] == len(blob)
    saved = json.loads((out / "summary.json").read_text())
    assert [r["variant"] for r in saved] == variants
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")


@pytest.mark.slow
def test_shapes_distill_recipe_end_to_end_tiny(tmp_path):
    """The shipped recipe through run_recipe (what `keras-compress run` calls), with tiny data and epochs."""
    from keras_compress.pipeline.run import run_recipe

    out = tmp_path / "run"
    rows = run_recipe("shapes_distill", out, epochs_scale=0.01, verbose=False, overrides={
        "dataset.options": {"n_train": 256, "n_test": 64},
        "variants.student_distilled_pruned.stages.0.prune.frequency": 1,
        "measure.latency_runs": 2, "convert.calibration_samples": 16, "report.html": False})
    variants = ["teacher", "student_scratch", "student_distilled", "student_distilled_pruned", "student_distilled_pruned_qat"]
    _check_run(out, rows, variants)
    assert rows[-1]["sparsity"] >= 0.49 and rows[3]["sparsity"] >= 0.49 and rows[2]["sparsity"] < 0.01
    assert rows[0]["params"] / rows[2]["params"] >= 4 and rows[1]["params"] == rows[2]["params"]
    assert json.loads((out / "recipe.json").read_text())["name"] == "shapes_distill"
    for name in variants:
        assert (out / "models" / f"{name}.keras").is_file()


@pytest.mark.slow
def test_digits_prune_qat_recipe_end_to_end_tiny(tmp_path):
    from keras_compress.pipeline.run import compress

    out = tmp_path / "run"
    rows = compress("digits_prune_qat", out, epochs_scale=0.1, verbose=False,
                    overrides={"measure.latency_runs": 2, "convert.calibration_samples": 16, "report.html": False})
    _check_run(out, rows, ["student", "student", "student_pruned", "student_pruned", "student_pruned_qat"])
    assert [r["mode"] for r in rows] == ["float32", "int8", "float32", "int8", "int8"]
    assert [round(r["sparsity"], 2) for r in rows] == [0.0, 0.0, 0.5, 0.5, 0.5]
    run = json.loads((out / "run.json").read_text())
    assert set(run["keras_accuracy"]) == {"student", "student_pruned", "student_pruned_qat"}
    assert "isa" in run["machine"] and "int8_dot_product" in run["machine"]
