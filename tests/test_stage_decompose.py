"""The ``decompose`` stage: recipe validation naming the field, and a tiny chain (factorize, record, distil from the received model)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_compress.errors import ConfigError
from keras_compress.pipeline import Artifact, get_stage
from keras_compress.pipeline.spec import build_spec, spec_data
from keras_compress.recipes.recipe import Recipe, apply_overrides

BASE = {
    "name": "t",
    "variants": {
        "s": {"stages": [{"build": {"model": "cnn", "width": 0.5}}, {"train": {"epochs": 1}}]},
        "d": {"from": "s", "stages": [{"decompose": {"ratio": 0.5}}]},
    },
}
D = "variants.d.stages[0].decompose"


@pytest.mark.parametrize(
    "settings, field, expected",
    [
        ({"ratio": 0.5, "rank": 4}, D, "give exactly one of rank, energy, ratio; got rank, ratio"),
        ({}, D, "give exactly one of rank, energy, ratio (or a rank / ratio / energy for every entry of"),
        ({"layers": {"^conv2$": 0.5, "^fc$": True}}, D, "for every entry of variants.d.stages[0].decompose.layers); got none"),
        ({"ratio": 1.0}, f"{D}.ratio", "in (0.0, 1.0); got 1.0"),
        ({"energy": 0}, f"{D}.energy", "in (0.0, 1.0]; got 0"),
        ({"rank": 0}, f"{D}.rank", "an integer >= 1; got 0"),
        ({"ratio": float("nan")}, f"{D}.ratio", "finite number"),
        ({"ratio": 0.5, "method": "svd"}, f"{D}.method", "'auto', 'channel', 'spatial'; got 'svd'"),
        ({"ratio": 0.5, "layers": 3}, f"{D}.layers", "a layer regex, a non-empty list of them"),
        ({"ratio": 0.5, "layers": []}, f"{D}.layers", "a layer regex, a non-empty list of them"),
        ({"ratio": 0.5, "layers": "conv["}, f"{D}.layers", "not a valid regular expression"),
        ({"ratio": 0.5, "layers": {"^fc$": "x"}}, f"{D}.layers['^fc$']", "true, an int rank, a float MAC ratio"),
        ({"ratio": 0.5, "layers": {"^fc$": 1.5}}, f"{D}.layers['^fc$']", "in (0.0, 1.0); got 1.5"),
        ({"ratio": 0.5, "layers": {"^fc$": {"rank": 2, "ratio": 0.3}}}, f"{D}.layers['^fc$']", "at most one of rank, energy, ratio"),
        ({"ratio": 0.5, "layers": {"^fc$": {"energy": 1.5}}}, f"{D}.layers['^fc$'].energy", "in (0.0, 1.0]"),
        ({"ratio": 0.5, "layers": {"^fc$": {"ranks": 2}}}, f"{D}.layers['^fc$'].ranks", "unknown field; allowed: 'rank'"),
        ({"ratio": 0.5, "recovery": "finetune"}, f"{D}.recovery", "'distil', 'labels'; got 'finetune'"),
        ({"ratio": 0.5, "recovery": "labels", "teacher": "s"}, f"{D}.teacher", "only with recovery 'distil'"),
        ({"ratio": 0.5, "teacher": "d"}, f"{D}.teacher", "a variant defined above ('s')"),
        ({"ratio": 0.5, "epochs": 0}, f"{D}.epochs", "an integer in [1, 10000]"),
        ({"ratio": 0.5, "rnak": 3}, f"{D}.rnak", "unknown field"),
    ],
)
def test_bad_decompose_settings_name_the_field(settings, field, expected):
    with pytest.raises(ConfigError) as info:
        Recipe.from_dict(apply_overrides(BASE, {"variants.d.stages.0.decompose": settings}))
    msg = str(info.value)
    assert msg.startswith(f"{field}:"), msg
    assert expected in msg, msg


@pytest.mark.parametrize(
    "settings",
    [
        {"ratio": 0.45, "layers": ["^conv[23]$", "^fc$"]},
        {"energy": 0.9, "method": "channel", "recovery": "labels", "layers": "conv"},
        {"layers": {"conv": 0.3, "^conv3$": {"energy": 0.95, "method": "spatial"}, "^fc$": 16, "^conv1$": None}},
        {"rank": 4, "layers": {"conv": True, "^fc$": {"method": "auto"}}, "teacher": "s"},
    ],
)
def test_good_settings_round_trip(settings):
    spec = build_spec(get_stage("decompose").spec, settings, "decompose")
    assert build_spec(type(spec), spec_data(spec), "decompose") == spec
    recipe = Recipe.from_dict(apply_overrides(BASE, {"variants.d.stages.0.decompose": settings}))
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_per_layer_map_follows_the_recipe_rules():
    """re.search, the last matching pattern wins, null leaves a layer alone; true takes the stage's own setting."""
    spec = build_spec(get_stage("decompose").spec,
                      {"rank": 4, "layers": {"conv": True, "^conv3$": {"energy": 0.9}, "^conv1$": None}}, "d")
    assert spec.layers.resolve(["conv1", "conv2", "conv3", "fc"]) == {"conv2": True, "conv3": {"energy": 0.9}}
    assert spec.criterion == {"rank": 4}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A trained tiny CNN on 8x8 digits in a run context (seconds)."""
    from keras_compress.datasets import load_digits
    from keras_compress.pipeline import Context
    from keras_compress.pipeline.run import describe_model, run_chain

    (x, y), (xt, yt) = load_digits(image_size=8)
    ctx = Context.create(((x[:320], y[:320]), (xt[:64], yt[:64])), tmp_path_factory.mktemp("tiny") / "run", name="tiny", quiet=True)
    calls = [(n, build_spec(get_stage(n).spec, d, n)) for n, d in (("build", {"width": 0.5}), ("train", {"epochs": 2, "batch_size": 64}))]
    ctx.artifacts["base"] = describe_model(run_chain(calls, Artifact("base"), ctx), ctx)
    return ctx


def _decompose(ctx, settings, name="small"):
    from keras_compress.pipeline.run import run_chain

    spec = build_spec(get_stage("decompose").spec, {"epochs": 1, "batch_size": 64, **settings}, "decompose")
    return run_chain([("decompose", spec)], ctx.artifacts["base"].evolve(name=name), ctx)


def test_decompose_stage_factorizes_records_and_distils_from_the_received_model(tiny):
    from keras_compress.decomposition import decompose, model_macs

    base = tiny.artifacts["base"].model
    before = [w.copy() for w in base.get_weights()]
    out = _decompose(tiny, {"ratio": 0.5, "layers": ["^conv[23]$", "^fc$"]})
    model = out.model
    names = [layer.name for layer in model.layers]
    assert {"conv2_a", "conv2_b", "conv3_a", "conv3_b", "fc_a", "fc_b", "conv1", "logits"} <= set(names)
    assert "conv2" not in names and out.stages == ("build", "train", "decompose")

    record = out.meta["decomposition"]
    assert tiny.info["decomposition"]["small"] is record
    assert record["macs_before"] == model_macs(base) and record["macs_after"] == model_macs(model) < record["macs_before"]
    assert record["params_after"] == model.count_params() < record["params_before"] == base.count_params()
    rows = {r["layer"]: r for r in record["layers"]}
    assert [rows[n]["status"] for n in ("conv1", "conv2", "conv3", "fc", "logits")] == ["kept", "decomposed", "decomposed", "decomposed", "kept"]
    for n in ("conv2", "conv3", "fc"):
        assert rows[n]["macs_after"] <= 0.5 * rows[n]["macs_before"] and rows[n]["energy"] < 1.0
    assert record["setting"] == {"ratio": 0.5, "method": "auto"}

    # the factors trained (they moved away from the truncated SVD of the received model), the received model did not
    untrained = decompose(base, ratio=0.5, layers=["conv2", "conv3", "fc"])
    for n in ("conv2_a", "conv3_b", "fc_a"):
        assert not np.allclose(model.get_layer(n).get_weights()[0], untrained.get_layer(n).get_weights()[0])
    assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))
    assert all(layer.trainable for layer in model.layers) and len(model.trainable_weights) == len(model.weights)


def test_per_layer_settings_reach_decompose_and_labels_recovery(tiny):
    out = _decompose(tiny, {"layers": {"conv": 0.6, "^conv1$": None, "^fc$": 4}, "recovery": "labels", "method": "channel"},
                     name="mixed")
    rows = {r["layer"]: r for r in out.meta["decomposition"]["layers"]}
    assert rows["conv1"]["status"] == "kept" and rows["fc"]["rank"] == 4
    assert rows["conv2"]["method"] == rows["conv3"]["method"] == "channel"
    assert rows["conv2"]["macs_after"] <= 0.6 * rows["conv2"]["macs_before"]


def test_layer_patterns_that_match_nothing_and_incomplete_specs_are_refused(tiny):
    from keras_compress.pipeline.run import run_stage

    with pytest.raises(ConfigError, match=r"decompose\.layers: pattern '\^conv9\$' matches no Dense / Conv layer of 'bad'; "
                                          r"candidates: conv1, conv2, conv3, fc, logits"):
        _decompose(tiny, {"ratio": 0.5, "layers": ["^conv9$"]}, name="bad")
    with pytest.raises(ConfigError, match=r"decompose\.layers: selects no layer of 'bad'"):
        _decompose(tiny, {"ratio": 0.5, "layers": {"conv": None}}, name="bad")
    with pytest.raises(ConfigError, match="decompose: give exactly one of rank, energy, ratio"):
        run_stage("decompose", None, tiny.artifacts["base"], tiny)


def test_distilling_does_not_freeze_the_teacher_variant(tiny):
    """keras' Distiller freezes the model it gets: the pipeline hands it a copy, so later variants ``from`` the teacher train."""
    from keras_compress.pipeline.run import run_chain

    calls = [(n, build_spec(get_stage(n).spec, d, n)) for n, d in (("build", {"width": 0.25}),
                                                                    ("distil", {"teacher": "base", "epochs": 1, "batch_size": 64}))]
    run_chain(calls, Artifact("student"), tiny)
    base = tiny.artifacts["base"].model
    assert base.trainable and all(layer.trainable for layer in base.layers)
