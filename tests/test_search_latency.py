"""Latency lookup table: signatures, persistence and keying, measure-once, predict = overhead + sum."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import keras_compress.search.latency as lat
from keras_compress import machine
from keras_compress.errors import CompressError, LatencyTableError
from keras_compress.search.latency import (
    FLOOR,
    LatencyTable,
    edgetpu_latency_ms,
    layer_signature,
    measure_tflite,
)

L = keras.layers
FAST = {"rounds": 2, "runs": 3, "warmup": 1}


def _tiny(filters=4, name="tiny", bn=False):
    inp = keras.Input((6, 6, 2), name="x")
    x = L.Conv2D(filters, 3, padding="same", name="c1")(inp)
    if bn:
        x = L.BatchNormalization(name="bn")(x)
        x = L.ReLU(name="relu")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dropout(0.2, name="drop")(x)
    return keras.Model(inp, L.Dense(3, name="out")(x), name=name)


@pytest.fixture
def count_conversions(monkeypatch):
    """Wrap the one-layer converter, counting calls."""
    calls = []
    real = lat._convert_item

    def counted(item, seed=0):
        calls.append(item.signature)
        return real(item, seed)

    monkeypatch.setattr(lat, "_convert_item", counted)
    return calls


def test_signature_same_layer_same_key_and_name_ignored():
    a = L.Conv2D(8, 3, padding="same", name="a", kernel_initializer="zeros")
    b = L.Conv2D(8, 3, padding="same", name="b", kernel_initializer="he_normal")
    assert layer_signature(a, [(16, 16, 4)]) == layer_signature(b, [(16, 16, 4)])
    assert layer_signature(a, [(16, 16, 4)]) == layer_signature(a, [[16, 16, 4]])  # list or tuple
    assert "'a'" not in layer_signature(a, [(16, 16, 4)]) and '"name"' not in layer_signature(a, [(16, 16, 4)])


@pytest.mark.parametrize(
    "other, shape",
    [
        (L.Conv2D(16, 3, padding="same"), (16, 16, 4)),  # filters
        (L.Conv2D(8, 5, padding="same"), (16, 16, 4)),  # kernel size
        (L.Conv2D(8, 3, strides=2, padding="same"), (16, 16, 4)),  # strides
        (L.Conv2D(8, 3, padding="valid"), (16, 16, 4)),  # padding
        (L.Conv2D(8, 3, padding="same", activation="relu"), (16, 16, 4)),  # activation
        (L.Conv2D(8, 3, padding="same", use_bias=False), (16, 16, 4)),  # bias
        (L.Conv2D(8, 3, padding="same", dilation_rate=2), (16, 16, 4)),  # dilation
        (L.Conv2D(8, 3, padding="same"), (8, 8, 4)),  # input shape
        (L.DepthwiseConv2D(3, padding="same"), (16, 16, 4)),  # class
    ],
)
def test_signature_discriminates(other, shape):
    base = layer_signature(L.Conv2D(8, 3, padding="same"), [(16, 16, 4)])
    assert layer_signature(other, [shape]) != base


def test_signature_reads_the_input_shape_of_a_called_layer_and_skips_vanishing_layers():
    m = _tiny()
    assert layer_signature(m.get_layer("c1")).endswith("@[[6,6,2]]")
    assert layer_signature(m.get_layer("drop")) is None
    with pytest.raises(LatencyTableError, match="'free'.*input shape"):
        layer_signature(L.Dense(3, name="free"))
    with pytest.raises(LatencyTableError, match="unknown dimensions"):
        layer_signature(L.Dense(3, name="d"), [(None, 4)])


def test_model_items_fold_batchnorm_and_relu_into_the_conv():
    items = {i.name: i for i in lat._model_items(_tiny(bn=True))}
    assert items["bn"].signature is None and items["bn"].note == "folded into c1"
    assert items["relu"].signature is None and items["relu"].note == "folded into c1"
    assert items["drop"].signature is None and items["x"].signature is None
    assert all(items[n].signature for n in ("c1", "pool", "flat", "out"))


def test_measure_once_then_nothing(tmp_path, count_conversions):
    path = tmp_path / "lat.json"
    table = LatencyTable(path, num_threads=1, **FAST)
    measured = table.measure(_tiny(), progress=lambda s: None)
    # floor + conv, pool, flatten, dense; input and dropout have no entry
    assert measured[0] == FLOOR and len(measured) == 5 and len(count_conversions) == 5
    assert set(table.entries) == set(measured) and all(v > 0 for v in table.entries.values())
    assert table.measure(_tiny(name="again")) == [] and len(count_conversions) == 5
    # 8 filters: the conv, pool, flatten and dense see other shapes; only the floor is shared
    wider = table.measure(_tiny(filters=8))
    assert FLOOR not in wider and len(wider) == 4 and len(count_conversions) == 5 + len(wider)
    # persisted: a new object on the same file measures nothing
    again = LatencyTable(path, num_threads=1, **FAST)
    assert again.entries == table.entries and again.missing(_tiny()) == []


def test_table_is_keyed_by_machine_and_threads(tmp_path, monkeypatch):
    path = tmp_path / "lat.json"
    table = LatencyTable(path, num_threads=1, **FAST)
    table.measure(_tiny())
    assert LatencyTable(path, num_threads=2, **FAST).entries == {}  # other thread count: other section

    real = machine.cpu_features
    monkeypatch.setattr(machine, "cpu_features", lambda: {**real(), "cpu": "Some Other CPU"})
    elsewhere = LatencyTable(path, num_threads=1, **FAST)
    assert elsewhere.key != table.key and elsewhere.entries == {}
    monkeypatch.setattr(machine, "cpu_features", lambda: {**real(), "isa": ["avx2", "avx512_vnni"]})
    assert LatencyTable(path, num_threads=1, **FAST).entries == {}
    monkeypatch.setattr(machine, "cpu_features", real)
    assert LatencyTable(path, num_threads=1, **FAST).entries == table.entries
    data = json.loads(path.read_text())
    assert data["format"] == lat.TABLE_FORMAT and list(data["tables"]) == [table.key]
    assert "threads=1" in table.key and table.machine["cpu"] in table.key


def test_saving_keeps_other_machines_sections(tmp_path):
    path = tmp_path / "lat.json"
    path.write_text(json.dumps({"format": lat.TABLE_FORMAT, "tables": {"other machine": {"entries": {}}}}))
    table = LatencyTable(path, **FAST)
    table.measure(_tiny())
    assert set(json.loads(path.read_text())["tables"]) == {"other machine", table.key}


def test_bad_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "lat.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(LatencyTableError, match=r"lat\.json.*expected a latency table.*something else"):
        LatencyTable(path)
    assert issubclass(LatencyTableError, CompressError)


def test_predict_is_overhead_plus_sum_and_calibrate_sets_the_overhead(tmp_path):
    table = LatencyTable(tmp_path / "lat.json", **FAST)
    model = _tiny(bn=True)
    p = table.predict(model, measure_missing=True)
    costs = [x.ms for x in p.layers if x.ms is not None]
    assert not p.calibrated and p.overhead_ms == table.floor_ms
    assert p.total_ms == pytest.approx(p.overhead_ms + sum(costs))
    assert [x.name for x in p.layers if x.ms is None] == ["x", "bn", "relu", "drop"]
    cal = table.calibrate(model, measured_ms=p.total_ms + 1.0, mode="offset")
    assert cal["overhead_ms"] == pytest.approx(p.overhead_ms + 1.0) and cal["scale"] == 1.0
    q = LatencyTable(tmp_path / "lat.json", **FAST).predict(model)  # calibration persisted
    assert q.calibrated and q.total_ms == pytest.approx(p.total_ms + 1.0)
    assert q.to_dict()["layers"][1]["name"] == "c1"
    cal = table.calibrate(model, measured_ms=2 * p.total_ms)  # mode="scale": overhead stays the floor
    assert cal["mode"] == "scale" and cal["overhead_ms"] == table.floor_ms
    r = table.predict(model)
    assert r.total_ms == pytest.approx(2 * p.total_ms) and r.scale == pytest.approx(cal["scale"])
    assert r.total_ms == pytest.approx(r.overhead_ms + sum(x.ms for x in r.layers if x.ms is not None))
    assert r.layers[1].ms == pytest.approx(cal["scale"] * p.layers[1].ms)
    with pytest.raises(LatencyTableError, match="mode must be 'scale' or 'offset', got 'both'"):
        table.calibrate(model, 1.0, mode="both")

def test_predict_names_the_layers_without_an_entry(tmp_path):
    table = LatencyTable(None, **FAST)
    table.measure(_tiny())
    bigger = _tiny(filters=8, name="bigger")
    with pytest.raises(LatencyTableError, match=r"model 'bigger'.*'c1' \(Conv2D\)") as e:
        table.predict(bigger)
    assert "c1" in e.value.layers and "drop" not in e.value.layers
    assert table.predict(bigger, measure_missing=True).total_ms > 0


def test_unconvertible_layer_is_named(tmp_path):
    class Weird(L.Layer):
        def call(self, x):
            return keras.ops.sort(x, axis=-1)

    inp = keras.Input((4,))
    model = keras.Model(inp, Weird(name="weird")(inp))
    with pytest.raises(LatencyTableError, match="'weird'"):
        LatencyTable(None, **FAST).measure(model)


def test_measure_tflite_interleaves_models():
    from keras_compress.convert import to_tflite

    data = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype("float32")
    blobs = {n: to_tflite(_tiny(f), quantization="int8", representative_data=data, verbose=False) for n, f in (("a", 2), ("b", 8))}
    lines = []
    out = measure_tflite(blobs, rounds=3, runs=3, warmup=1, progress=lines.append)
    assert set(out) == {"a", "b"} and all(len(v["rounds_ms"]) == 3 and v["median_ms"] > 0 for v in out.values())
    assert len(lines) == 3


def test_edgetpu_estimate_is_labelled_and_streams_beyond_the_cache():
    small = edgetpu_latency_ms(macs=1e8, param_bytes=1e6)
    assert small["estimate"] is True and "ESTIMATED" in small["note"] and small["stream_ms"] == 0
    big = edgetpu_latency_ms(macs=1e8, param_bytes=lat.EDGETPU_CACHE_BYTES + 44e6)
    assert big["streamed_bytes"] == pytest.approx(44e6) and big["stream_ms"] == pytest.approx(100.0)
    assert edgetpu_latency_ms(macs=2e8, param_bytes=0)["compute_ms"] == pytest.approx(2 * small["compute_ms"])
    with pytest.raises(LatencyTableError, match="utilization=0"):
        edgetpu_latency_ms(1, 1, utilization=0)


def test_an_entry_is_its_fastest_round_not_its_median(tmp_path):
    """Interference only adds time: rounds on two levels (another vCPU busy) must not pick the slow one."""
    import json

    from keras_compress.search.latency import TABLE_FORMAT, LatencyTable

    path = tmp_path / "table.json"
    key = LatencyTable(None).key
    rounds = [0.0442, 0.065, 0.0651, 0.065, 0.0649]  # measured here: a 12-filter conv, 0.044 ms when alone
    path.write_text(json.dumps({"format": TABLE_FORMAT, "tables": {key: {"entries": {"sig": {"samples": rounds}}}}}))
    table = LatencyTable(path, rounds=5)
    assert table.entries == {"sig": 0.0442}
    table.save()
    assert json.loads(path.read_text())["tables"][key]["entries"]["sig"]["ms"] == 0.0442
