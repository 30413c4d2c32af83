"""keras_compress.search: plans, budgets, the space, one-shot application, costs, allocation, sensitivity cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_compress.errors import ConfigError
from keras_compress.search import Budget, Plan, SearchSpace, apply_oneshot, parse_budgets
from keras_compress.search.allocate import excess, greedy, uniform
from keras_compress.search.cost import CostModel
from keras_compress.search.sensitivity import analyse


# --- plans and budgets -------------------------------------------------------------------------------


def test_plan_json_round_trip_and_canonical_order():
    plan = Plan({"fc": {"clusters": 16, "sparsity": 0.9}, "conv1": {"filters": 0.5}})
    assert list(plan.layers["fc"]) == ["sparsity", "clusters"]  # application order
    again = Plan.from_json(plan.to_json(model="tiny"))
    assert again == plan and hash(again) == hash(plan)
    assert json.loads(plan.to_json())["format"] == "keras-compress-plan/1"
    assert plan.with_setting("fc", "clusters", None).layers == {"fc": {"sparsity": 0.9}, "conv1": {"filters": 0.5}}


@pytest.mark.parametrize(
    "layers, words",
    [
        ({"fc": {"sparsity": 1.0}}, ["'fc'", "sparsity", "(0, 1)", "1.0"]),
        ({"fc": {"clusters": 1}}, ["'fc'", "clusters", ">= 2"]),
        ({"fc": {"pruning": 0.5}}, ["'fc'", "unknown method", "'pruning'"]),
        ({"fc": 0.5}, ["'fc'", "mapping"]),
        ({"conv": {"filters": float("nan")}}, ["'conv'", "filters"]),
    ],
)
def test_bad_plan_names_layer_and_setting(layers, words):
    with pytest.raises(ConfigError) as e:
        Plan(layers)
    for w in words:
        assert w in str(e.value)


def test_plan_file_errors_name_the_file():
    with pytest.raises(ConfigError, match="plan.json: not valid JSON"):
        Plan.from_json("{", "plan.json")
    with pytest.raises(ConfigError, match="plan.json: format 'other'"):
        Plan.from_json('{"format": "other", "layers": {}}', "plan.json")


@pytest.mark.parametrize(
    "text, original, limit",
    [
        ("size=64KB", {}, 64_000),
        ("size=64KiB", {}, 65_536),
        ("size=25%", {"size": 200_000}, 50_000),
        ("gzip=1/12", {"gzip_float32": 1_200_000, "gzip": 1}, 100_000),
        ("latency=0.5x", {"latency": 0.4}, 0.2),
        ("latency=300us", {}, 0.3),
        ("macs=10M", {}, 1e7),
        ("accuracy=-1pt", {"accuracy": 0.98}, 0.97),
        ("accuracy=97%", {"accuracy": 0.5}, 0.97),
    ],
)
def test_budget_limits(text, original, limit):
    assert Budget.parse(text).limit(original) == pytest.approx(limit)


@pytest.mark.parametrize(
    "texts, words",
    [
        (["speed=2x"], ["'speed=2x'", "size, gzip, macs, latency, accuracy"]),
        (["size=12 parsecs"], ["'size=12 parsecs'", "unit"]),
        (["size=0"], ["> 0"]),
        (["latency=0x"], ["> 0"]),
        (["accuracy=1.5"], ["(0, 1]"]),
        (["size=1KB", "size=2KB"], ["'size' given 2 times"]),
        (["accuracy=-1pt"], ["at least one of the size, gzip, macs or latency"]),
    ],
)
def test_bad_budgets_are_refused_with_the_reason(texts, words):
    with pytest.raises(ConfigError) as e:
        parse_budgets(texts)
    for w in words:
        assert w in str(e.value)


# --- space and one-shot application ---------------------------------------------------------------------


def test_space_offers_each_method_only_where_it_applies(tiny):
    space = SearchSpace.of(tiny)
    assert list(space.candidates) == ["conv1", "conv2", "fc", "logits"]
    assert "filters" not in space.candidates["logits"]  # it feeds the output: prune_filters refuses it
    assert set(space.candidates["conv2"]) == {"filters", "lowrank", "sparsity", "clusters"}
    assert space.size() == sum(len(v) for ms in space.candidates.values() for v in ms.values())
    with pytest.raises(ConfigError, match="unknown method 'quantize'"):
        SearchSpace.of(tiny, ("quantize",))
    with pytest.raises(ConfigError, match=r"\['pool'\] cannot be compressed"):
        SearchSpace.of(tiny, ("filters",), layers=["pool"])


def test_oneshot_applies_each_method_exactly(tiny):
    plan = Plan({"conv1": {"filters": 0.5}, "conv2": {"sparsity": 0.75, "clusters": 4}, "fc": {"lowrank": 0.25, "sparsity": 0.5}})
    out = apply_oneshot(tiny, plan)
    assert out.get_layer("conv1").filters == 4 and out.get_layer("conv2").kernel.shape[2] == 4
    k2 = out.get_layer("conv2").get_weights()[0]
    assert np.mean(k2 == 0) == pytest.approx(0.75, abs=1 / k2.size)
    assert len(np.unique(k2)) <= 4 and 0.0 in np.unique(k2)  # the zeros are one of the clusters
    names = [layer.name for layer in out.layers]
    assert "fc_a" in names and "fc_b" in names and "fc" not in names
    for factor in ("fc_a", "fc_b"):  # a factorized layer's other settings apply to both factors
        k = out.get_layer(factor).get_weights()[0]
        assert np.mean(k == 0) == pytest.approx(0.5, abs=1 / k.size)
    assert tiny.get_layer("conv1").filters == 8  # the original is left alone


def test_cost_model_predicts_the_converted_files(tiny, data8):
    from keras_compress.convert import to_tflite
    from keras_compress.summary import gzip_size

    (x_train, _), _ = data8

    def convert(m):
        return to_tflite(m, quantization="int8", representative_data=x_train[:32], verbose=False)

    costs = CostModel(tiny)
    base = convert(tiny)
    ref_plan = Plan({"conv2": {"lowrank": 0.5}, "fc": {"lowrank": 0.5}})
    ref = convert(costs.structure(ref_plan))
    costs.calibrate({"size": len(base), "gzip": gzip_size(base)}, (ref_plan, {"size": len(ref), "gzip": gzip_size(ref)}))
    for plan in (Plan({"conv1": {"filters": 0.5}, "fc": {"filters": 0.25}}),
                 Plan({"conv2": {"filters": 0.25, "lowrank": 0.25}, "fc": {"sparsity": 0.9, "clusters": 8}})):
        blob = convert(apply_oneshot(tiny, plan))
        predicted = costs.predict(plan)
        assert predicted["size"] == pytest.approx(len(blob), rel=0.03), plan.describe()
        assert predicted["gzip"] == pytest.approx(gzip_size(blob), rel=0.08), plan.describe()


# --- allocation ------------------------------------------------------------------------------------------


def _toy():
    """Two layers with a sparsity ladder; damage grows fast on 'a', slowly on 'b'; cost is the kept weights."""
    space = {"a": {"sparsity": (0.5, 0.75, 0.9)}, "b": {"sparsity": (0.5, 0.75, 0.9)}}
    damage_of = {"a": {0.5: 0.01, 0.75: 0.1, 0.9: 0.5}, "b": {0.5: 0.01, 0.75: 0.02, 0.9: 0.04}}

    def damage(plan):
        return sum(damage_of[n][s["sparsity"]] for n, s in plan.layers.items())

    def cost(plan):
        return {"size": sum(100 * (1 - (plan.get(n, "sparsity") or 0)) for n in space)}

    return space, damage, cost


def test_greedy_puts_the_compression_where_it_hurts_least():
    space, damage, cost = _toy()
    plan = greedy(space, damage, cost, {"size": 70})
    assert excess(cost(plan), {"size": 70}) == 0
    assert plan.layers == {"a": {"sparsity": 0.5}, "b": {"sparsity": 0.9}}
    best = uniform(space, damage, cost, {"size": 70})
    assert best.layers == {"a": {"sparsity": 0.75}, "b": {"sparsity": 0.75}}
    assert damage(plan) < damage(best)


def test_backward_pass_undoes_steps_the_budget_no_longer_needs():
    space = {"a": {"sparsity": (0.1, 0.95)}, "b": {"sparsity": (0.1,)}}
    damage_of = {("a", 0.1): 0.001, ("a", 0.95): 0.05, ("b", 0.1): 0.0001}

    def damage(plan):
        return sum(damage_of[(n, s["sparsity"])] for n, s in plan.layers.items())

    def cost(plan):
        return {"size": sum(100 * (1 - (plan.get(n, "sparsity") or 0)) for n in space)}

    trace: list = []
    plan = greedy(space, damage, cost, {"size": 120}, trace=trace)
    assert trace[-1].layers == {"a": {"sparsity": 0.95}, "b": {"sparsity": 0.1}}  # the forward pass took b first
    assert plan.layers == {"a": {"sparsity": 0.95}}  # ... which the big step on a made unnecessary


def test_unreachable_budget_is_an_error_with_the_closest_plan():
    space, damage, cost = _toy()
    with pytest.raises(ConfigError, match=r"cannot be met.*size 20 \(limit 5\)"):
        greedy(space, damage, cost, {"size": 5})
    with pytest.raises(ConfigError, match="no uniform setting"):
        uniform(space, damage, cost, {"size": 5})


# --- sensitivity -----------------------------------------------------------------------------------------


class _StopAfter:
    """A progress callback that presses Ctrl-C after ``n`` finished entries, counting what it saw."""

    def __init__(self, n=None):
        self.n, self.lines = n, []

    def __call__(self, line):
        self.lines.append(line)
        entries = [x for x in self.lines if x.startswith("sensitivity [")]
        if self.n is not None and len(entries) >= self.n:
            raise KeyboardInterrupt


def test_sensitivity_resumes_from_its_cache_after_ctrl_c(tiny, data8, tmp_path):
    _, (x_test, y_test) = data8
    space = SearchSpace.of(tiny, ("filters", "sparsity"), layers=["conv1", "fc"])
    cache = tmp_path / "sensitivity.json"
    with pytest.raises(KeyboardInterrupt):
        analyse(tiny, space, x_test[:100], y_test[:100], cache=cache, progress=_StopAfter(3))
    saved = json.loads(cache.read_text())["entries"]
    assert len(saved) == 3
    second = _StopAfter()
    sens = analyse(tiny, space, x_test[:100], y_test[:100], cache=cache, progress=second)
    computed = [x.split("] ")[1].split(":")[0] for x in second.lines if x.startswith("sensitivity [")]
    assert f"3 from the cache, {space.size() - 3} to compute" in second.lines[0]
    assert len(computed) == space.size() - 3
    assert not {k.replace("|", " ") for k in saved} & {c.replace(" ", " ") for c in computed}
    assert sens.entries.keys() >= saved.keys() and len(sens.entries) == space.size()
    assert all(sens.entries[k] == v for k, v in saved.items())  # cached entries kept as they were


def test_sensitivity_cache_of_another_model_is_set_aside(tiny, data8, tmp_path):
    import keras

    _, (x_test, y_test) = data8
    space = SearchSpace.of(tiny, ("sparsity",), layers=["fc"])
    cache = tmp_path / "s.json"
    analyse(tiny, space, x_test[:50], y_test[:50], cache=cache)
    other = keras.models.clone_model(tiny)  # other (random) weights
    lines = _StopAfter()
    analyse(other, space, x_test[:50], y_test[:50], cache=cache, progress=lines)
    assert "another model or data" in lines.lines[0] and (tmp_path / "s.json.stale").exists()
    assert f"0 from the cache, {space.size()} to compute" in lines.lines[1]


def test_sensitivity_ranks_the_logits_above_a_hidden_layer(tiny, data8):
    _, (x_test, y_test) = data8
    sens = analyse(tiny, SearchSpace.of(tiny, ("sparsity",), layers=["fc", "logits"]), x_test, y_test)
    assert sens.damage("logits", "sparsity", 0.95) > sens.damage("fc", "sparsity", 0.5)
    assert sens.predicted_accuracy(Plan()) == sens.base_accuracy


def test_recovery_keeps_the_zeros_and_clusters_it_measures(tiny, data8):
    from keras_compress.search.apply import keep_applied

    (x_train, y_train), _ = data8
    plan = Plan({"fc": {"sparsity": 0.75, "clusters": 4}})
    student = apply_oneshot(tiny, plan)
    student.compile("adam", "sparse_categorical_crossentropy")
    student.fit(x_train[:96], y_train[:96], batch_size=32, epochs=1, verbose=0, callbacks=[keep_applied(plan)])
    k = student.get_layer("fc").get_weights()[0]
    assert np.mean(k == 0) >= 0.75 - 1 / k.size and len(np.unique(k)) <= 4


def test_four_bit_layers_are_on_the_int4_grid_and_costed_at_half_a_byte(tiny, data8):
    from keras_compress.convert import to_tflite
    from keras_compress.search.apply import four_bit_layers

    (x_train, _), _ = data8
    plan = Plan({"fc": {"bits": 4}, "conv2": {"lowrank": 0.5, "bits": 4}})
    out = apply_oneshot(tiny, plan)
    assert sorted(four_bit_layers(out, plan)) == ["conv2_a", "conv2_b", "fc"]
    k = out.get_layer("fc").get_weights()[0]
    assert max(len(np.unique(k[:, c])) for c in range(k.shape[1])) <= 15  # [-7, 7] times a per-channel scale
    costs = CostModel(tiny)
    base = to_tflite(tiny, quantization="int8", representative_data=x_train[:32], verbose=False)
    costs.calibrate({"size": len(base)})
    fc_only = Plan({"fc": {"bits": 4}})
    saved = costs.predict(Plan())["size"] - costs.predict(fc_only)["size"]
    assert saved == np.prod(tiny.get_layer("fc").kernel.shape) / 2
    int8 = ["conv1", "conv2", "logits"]
    blob = to_tflite(apply_oneshot(tiny, fc_only), quantization="int4_int8", representative_data=x_train[:32],
                     verbose=False, int8_layers=int8)
    assert costs.predict(fc_only)["size"] == pytest.approx(len(blob), rel=0.1)


def test_four_bits_are_refused_where_they_cannot_run_or_be_timed(tiny, data8):
    from keras_compress.search import search

    with pytest.raises(ConfigError, match="do not run on the Edge TPU"):
        search(tiny, data8, budget="size=50%", target="edgetpu", methods=("bits",))
    with pytest.raises(ConfigError, match="latency table measures int8 layers"):
        search(tiny, data8, budget="latency=0.5x", methods=("filters", "bits"))
    with pytest.raises(ConfigError, match="bits: expected 4"):
        Plan({"fc": {"bits": 2}})


def test_final_latencies_name_a_model_whose_rounds_disagree(monkeypatch, tmp_path):
    """A search's latency figures are medians of 15 rounds; a model whose median is far above its fastest round is said."""
    from keras_compress.search import latency
    from keras_compress.search.targets import CpuLatency

    calls = {}

    def fake(models, *, num_threads, rounds):
        calls["rounds"] = rounds
        return {"0": {"median_ms": 1.0, "rounds_ms": [0.9, 1.0, 1.1]}, "1": {"median_ms": 2.0, "rounds_ms": [1.5, 2.0, 2.1]}}

    monkeypatch.setattr(latency, "measure_tflite", fake)
    said = []
    cpu = CpuLatency(tmp_path / "table.json", progress=said.append)
    assert cpu.measure_models([b"a", b"b"]) == [1.0, 2.0]
    assert calls["rounds"] == 15
    assert len(said) == 1 and "model 2 of 2" in said[0] and "1.33x" in said[0] and "1.500 ms" in said[0]
