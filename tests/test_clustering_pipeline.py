"""The ``cluster`` pipeline stage: per-layer clusters, errors naming layers, and prune -> cluster -> qat -> int8."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_compress.clustering.tflite import tflite_kernel_values
from keras_compress.errors import ClusteringError, ConfigError
from keras_compress.pipeline import Artifact, get_stage
from keras_compress.pipeline.spec import build_spec

L = keras.layers


def spec(data):
    return build_spec(get_stage("cluster").spec, data, "cluster")


def test_spec_defaults_and_checks():
    s = spec({})
    assert (s.number_of_clusters.uniform, s.init, s.preserve_sparsity, s.epochs) == (16, "kmeans_plus_plus", None, 2)
    with pytest.raises(ConfigError, match="cluster.init"):
        spec({"init": "kmeans"})
    with pytest.raises(ConfigError, match="number_of_clusters"):
        spec({"number_of_clusters": 1})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from keras_compress.datasets import load_digits
    from keras_compress.pipeline import Context

    (x, y), (xt, yt) = load_digits(image_size=8)
    return Context.create(((x[:256], y[:256]), (xt[:64], yt[:64])), tmp_path_factory.mktemp("tiny") / "run",
                          name="tiny", quiet=True)


def small_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="conv"), L.DepthwiseConv2D(3, name="dw"),
                             L.Flatten(name="flat"), L.Dense(10, activation="softmax", name="logits")])


def test_naming_an_unclusterable_layer_is_an_error_naming_it(tiny):
    from keras_compress.pipeline.run import run_stage

    art = Artifact("x", small_model())
    with pytest.raises(ClusteringError, match=r"pattern '\^dw\$': layer 'dw' \(DepthwiseConv2D\) cannot be clustered: depthwise"):
        run_stage("cluster", spec({"number_of_clusters": {"^dw$": 8}}), art, tiny)
    with pytest.raises(ConfigError, match="matches no clusterable layer of 'x'; candidates: conv, logits"):
        run_stage("cluster", spec({"number_of_clusters": {"^fc$": 8}}), art, tiny)


@pytest.mark.slow
def test_prune_cluster_qat_chain_keeps_zeros_and_clusters_in_int8(tiny):
    from keras_compress.pipeline.run import run_chain

    fit1 = {"epochs": 1, "batch_size": 64}
    calls = [
        ("prune", {"target_sparsity": 0.6, "frequency": 1, **fit1}),
        ("cluster", {"number_of_clusters": {"conv": 4, "^logits$": 8}, **fit1}),
        ("qat", fit1),
    ]
    out = run_chain([(n, spec(d) if n == "cluster" else build_spec(get_stage(n).spec, d, n)) for n, d in calls],
                    Artifact("pcqat", small_model()), tiny)
    assert out.stages == ("prune", "cluster", "qat") and out.meta["clusters"] == {"conv": 4, "logits": 8}
    convert = build_spec(get_stage("convert").spec, {"mode": "int8", "calibration_samples": 16}, "convert")
    blob = run_chain([("convert", convert)], out, tiny).model
    rows = {r["op"]: r for r in tflite_kernel_values(blob)}
    assert rows["CONV_2D"]["max_unique_per_channel"] <= 4 and rows["FULLY_CONNECTED"]["unique"] <= 8
    assert rows["CONV_2D"]["zeros"] >= 0.55 and rows["FULLY_CONNECTED"]["zeros"] >= 0.55
    assert np.unique(rows["DEPTHWISE_CONV_2D"]["values"]).size > 8  # skipped: not clustered
