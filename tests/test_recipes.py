"""Recipes: validation (one ConfigError naming field and allowed values), builders, end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_compress.errors import ConfigError
from keras_compress.recipes import bundled_recipes, load_recipe
from keras_compress.recipes.recipe import Recipe, apply_overrides

BASE = {"name": "t", "student": {"model": "cnn", "width": 0.5, "epochs": 1}}


def _with(**sections):
    return apply_overrides(BASE, sections)


@pytest.mark.parametrize(
    "overrides, field, allowed",
    [
        ({"convert.target": "tpu"}, "convert.target", "'cpu', 'edgetpu'"),
        ({"convert.modes": ["int8", "int4"]}, "convert.modes[1]", "'float32', 'float16', 'dynamic', 'int8', 'int16x8'"),
        ({"pruning.schedule": "cubic"}, "pruning.schedule", "'polynomial', 'constant'"),
        ({"pruning.target_sparsity": 1.0}, "pruning.target_sparsity", "in [0.0, 1.0)"),
        ({"distillation.alpha": -0.1}, "distillation.alpha", "in [0.0, 1.0]"),
        ({"distillation.temperature": 0}, "distillation.temperature", "in (0.0, 100.0]"),
        ({"student.model": "resnet"}, "student.model", "'cnn', 'mobilenet_v2' or a path to a .keras file"),
        ({"student.epochs": 2.5}, "student.epochs", "an integer"),
        ({"student.widht": 0.5}, "student.widht", "allowed fields of student: 'model', 'width'"),
        ({"dataset.name": "imagenet"}, "dataset.name", "'digits', 'shapes'"),
        ({"qat.enabled": "yes"}, "qat.enabled", "true or false"),
        ({"convert.input_type": "int16"}, "convert.input_type", "'int8', 'uint8', 'float32' or null"),
        ({"distillation.features": [{"teacher": "conv3"}]}, "distillation.features[0]", "'teacher' and 'student'"),
        ({"outptu_dir": "x"}, "outptu_dir", "allowed top-level fields"),
        ({"distillation.enabled": True}, "teacher", "required when distillation.enabled"),
        ({"convert.target": "edgetpu", "convert.modes": ["int8", "float32"]}, "convert.modes", "only ['int8']"),
        ({"qat.enabled": True, "convert.modes": ["float32"]}, "convert.modes", "needs 'int8'"),
    ],
)
def test_bad_recipe_gets_one_error_naming_field_allowed_values_and_value(overrides, field, allowed):
    with pytest.raises(ConfigError) as info:
        Recipe.from_dict(_with(**overrides))
    msg = str(info.value)
    assert msg.startswith(f"{field}:"), msg
    assert allowed in msg, msg
    assert "\n" not in msg


def test_error_shows_the_value_found():
    with pytest.raises(ConfigError, match=r"got 'tpu'"):
        Recipe.from_dict(_with(**{"convert.target": "tpu"}))
    with pytest.raises(ConfigError, match=r"got 1\.0"):
        Recipe.from_dict(_with(**{"pruning.target_sparsity": 1.0}))


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstudent: {model: cnn}\npruning: {schedule: cubic}\n")
    with pytest.raises(ConfigError, match=r"^bad\.yaml: pruning\.schedule: expected one of 'polynomial', 'constant'; got 'cubic'$"):
        load_recipe(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(broken)
    with pytest.raises(ConfigError, match="does not exist .*bundled recipes: 'digits_prune_qat', 'shapes_distill'"):
        load_recipe(tmp_path / "missing.yaml")
    txt = tmp_path / "r.txt"
    txt.write_text("{}")
    with pytest.raises(ConfigError, match=r"expected a \.yaml, \.yml or \.json file"):
        load_recipe(txt)


def test_cli_run_prints_one_line_and_exits_2_on_a_bad_recipe(tmp_path, capsys):
    from keras_compress.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstudent: {model: cnn}\nconvert: {target: tpu}\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "convert.target" in err[0] and "'cpu', 'edgetpu'" in err[0]


def test_json_yaml_roundtrip_and_overrides(tmp_path):
    r = load_recipe("shapes_distill")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(r.to_dict()))
    again = load_recipe(path)
    assert again == r
    small = again.replace({"student.epochs": 1, "dataset.options": {"n_train": 10}})
    assert small.student.epochs == 1 and small.dataset.options == {"n_train": 10}
    assert small.distillation == r.distillation
    with pytest.raises(ConfigError, match="student.epochs"):
        r.replace({"student.epochs": -1})


def test_bundled_recipes_are_valid_and_int8():
    names = bundled_recipes()
    assert set(names) == {"digits_prune_qat", "shapes_distill"}
    for name in names:
        r = load_recipe(name)
        assert "int8" in r.convert.modes
    d = load_recipe("shapes_distill")
    assert d.distillation.enabled and d.pruning.target_sparsity == 0.5 and d.qat.enabled
    assert d.teacher.width / d.student.width >= 2


def test_builders_width_names_and_saved_model(tmp_path):
    from keras_compress.recipes.builders import build_model

    big = build_model("cnn", (32, 32, 3), 10, width=1.0)
    small = build_model("cnn", (32, 32, 3), 10, width=0.375)
    assert 4 <= big.count_params() / small.count_params() <= 8
    assert [l.name for l in big.layers] == [l.name for l in small.layers]
    mb = build_model("mobilenet_v2", (32, 32, 3), 10, width=0.5)
    assert mb.output.shape[-1] == 10 and any(type(l).__name__ == "DepthwiseConv2D" for l in mb.layers)
    path = tmp_path / "m.keras"
    small.save(path)
    loaded = build_model(str(path), (32, 32, 3), 10)
    assert loaded.count_params() == small.count_params()
    with pytest.raises(ConfigError, match="outputs 10 classes"):
        build_model(str(path), (32, 32, 3), 5)
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(str(tmp_path / "nope.keras"), (32, 32, 3), 10)


def test_shapes_distill_recipe_end_to_end_tiny(tmp_path):
    """The shipped recipe through run_recipe (what `keras-compress run` calls), with tiny data and epochs."""
    import edgetpu
    from keras_compress.recipes import run_recipe

    out = tmp_path / "run"
    rows = run_recipe(
        "shapes_distill",
        out,
        overrides={
            "dataset.options": {"n_train": 256, "n_test": 64},
            "teacher.epochs": 1,
            "student.epochs": 1,
            "pruning.epochs": 1,
            "pruning.frequency": 1,
            "qat.epochs": 1,
            "convert.latency_runs": 2,
            "convert.calibration_samples": 16,
        },
    )
    variants = [r["variant"] for r in rows]
    assert variants == ["teacher", "student_scratch", "student_distilled", "student_distilled_pruned", "student_distilled_pruned_qat"]
    for row in rows:
        assert row["mode"] == "int8"
        blob = (out / row["file"]).read_bytes()
        interp = edgetpu.make_interpreter(blob)
        assert interp.get_input_details()[0]["dtype"] == np.int8
        assert 0.0 <= row["accuracy"] <= 1.0 and row["size_bytes"] == len(blob)
    final = rows[-1]
    assert final["sparsity"] >= 0.49
    assert rows[0]["params"] / rows[2]["params"] >= 4
    saved = json.loads((out / "summary.json").read_text())
    assert [r["variant"] for r in saved] == variants
    assert (out / "summary.md").read_text().startswith("| variant")
    assert json.loads((out / "recipe.json").read_text())["name"] == "shapes_distill"
    for name in ("teacher", "student_scratch", "student_distilled", "student_distilled_pruned_qat"):
        assert (out / "models" / f"{name}.keras").is_file()
