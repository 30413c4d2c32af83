"""keras_compress.clustering: wrapping, training, sparsity, save/load, errors, tfmot's centroid inits."""

import json
from pathlib import Path
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_compress.clustering import (
    CentroidInitialization,
    ClusterableLayer,
    ClusteringSummaries,
    ClusterWeights,
    GradientAggregation,
    cluster_weights,
    initial_centroids,
    max_unique_per_channel,
    strip_clustering,
    unique_value_counts,
)
from keras_compress.clustering.algorithm import clustered_weight
from keras_compress.errors import ClusteringError

L = keras.layers
CI = CentroidInitialization


def tiny_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            L.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
            L.DepthwiseConv2D(3, padding="same", name="dw"),
            L.Flatten(name="flat"),
            L.Dense(3, activation="softmax", name="logits"),
        ],
        name="tiny",
    )


def data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 2)).astype("float32")
    y = (x[:, :4, :, 0].mean(axis=(1, 2)) > 0).astype("int32") + (x[:, 4:, :, 1].mean(axis=(1, 2)) > 0)
    return x, y


def fit(model, x, y, epochs=2, lr=1e-2):
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)


def quiet_cluster(*args, **kwargs):
    with pytest.warns(UserWarning, match="left unclustered: 'dw'"):
        return cluster_weights(*args, **kwargs)


# ------------------------------------------------------------------ layers
@pytest.mark.parametrize(
    "layer, shape, weight",
    [
        (lambda: L.Dense(6), (None, 10), "kernel"),
        (lambda: L.Conv1D(6, 3), (None, 9, 4), "kernel"),
        (lambda: L.Conv2D(6, 3), (None, 7, 7, 4), "kernel"),
        (lambda: L.Conv3D(6, 2), (None, 4, 4, 4, 3), "kernel"),
        (lambda: L.Conv2DTranspose(6, 3), (None, 5, 5, 4), "kernel"),
        (lambda: L.SeparableConv2D(6, 3), (None, 7, 7, 4), "pointwise_kernel"),
        (lambda: L.Embedding(20, 6), (None, 5), "embeddings"),
    ],
)
def test_each_clusterable_layer_gets_at_most_k_values(layer, shape, weight):
    keras.utils.set_random_seed(1)
    wrapped = cluster_weights(layer(), 5)
    wrapped.build(shape)
    values = keras.ops.convert_to_numpy(wrapped.clustered_weights()[weight])
    assert np.unique(values).size == 5
    inner = strip_clustering(wrapped)
    assert np.unique(keras.ops.convert_to_numpy(getattr(inner, weight))).size == 5


def test_forward_uses_the_centroids_and_strip_keeps_predictions():
    x, y = data()
    model = tiny_cnn()
    clustered = quiet_cluster(model, 4, CI.LINEAR)
    assert [l.name for l in clustered.layers] == ["cluster_conv", "dw", "flat", "cluster_logits"]
    assert clustered.layers[0].layer is not model.layers[0]  # a copy: the original is untouched
    assert np.unique(model.layers[0].kernel.numpy()).size == 3 * 3 * 2 * 8
    stripped = strip_clustering(clustered)
    assert [type(l).__name__ for l in stripped.layers] == ["Conv2D", "DepthwiseConv2D", "Flatten", "Dense"]
    assert unique_value_counts(stripped) == {"conv/kernel": 4, "logits/kernel": 4}
    np.testing.assert_allclose(stripped.predict(x, verbose=0), clustered.predict(x, verbose=0), atol=1e-6)


def test_training_moves_centroids_and_weights_and_reassigns():
    x, y = data()
    clustered = quiet_cluster(tiny_cnn(), 8, CI.DENSITY_BASED)
    conv = clustered.layers[0]
    c0 = conv.centroids()["kernel"].numpy().copy()
    w0 = conv.layer.kernel.numpy().copy()
    idx0 = np.argmin(np.abs(w0[..., None] - c0), -1)
    history = fit(clustered, x, y, epochs=6, lr=3e-2)
    assert history.history["loss"][-1] < history.history["loss"][0]
    c1 = conv.centroids()["kernel"].numpy()
    w1 = conv.layer.kernel.numpy()
    assert np.abs(c1 - c0).max() > 1e-3  # gradients reach the centroids
    assert np.abs(w1 - w0).max() > 1e-3  # and, straight-through, the original weights
    idx1 = np.argmin(np.abs(w1[..., None] - c1), -1)
    assert (idx1 != idx0).any()  # some weights changed cluster
    assert conv.centroid_drift()["kernel"] == pytest.approx(np.abs(c1 - c0).mean(), rel=1e-5)
    assert np.unique(keras.ops.convert_to_numpy(conv.clustered_weights()["kernel"])).size <= 8


def test_gradients_sum_or_average_over_each_cluster():
    w = tf.Variable([0.1, 0.2, 0.9, 1.1, 1.0])
    c = tf.Variable([0.0, 1.0])
    g = tf.constant([1.0, 2.0, 3.0, 4.0, 5.0])
    for average, expected in ((False, [3.0, 12.0]), (True, [1.5, 4.0])):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(clustered_weight(w, c, average_gradient=average) * g)
        dw, dc = tape.gradient(loss, [w, c])
        np.testing.assert_allclose(dc.numpy(), expected)
        np.testing.assert_allclose(dw.numpy(), g.numpy())  # straight-through
    np.testing.assert_allclose(clustered_weight(w, c).numpy(), [0, 0, 1, 1, 1])


def test_avg_aggregation_is_a_wrapper_option():
    layer = cluster_weights(L.Dense(4), 3, cluster_gradient_aggregation="AVG")
    assert layer.cluster_gradient_aggregation is GradientAggregation.AVG
    assert layer.get_config()["cluster_gradient_aggregation"] == "GradientAggregation.AVG"


# --------------------------------------------------------------- sparsity
def pruned_cnn():
    model = tiny_cnn()
    for layer in (model.get_layer("conv"), model.get_layer("logits")):
        k = layer.kernel.numpy()
        k[np.abs(k) < np.quantile(np.abs(k), 0.6)] = 0.0
        layer.kernel.assign(k)
    return model


def test_preserve_sparsity_keeps_every_zero_and_a_zero_centroid():
    x, y = data()
    model = pruned_cnn()
    zeros = model.get_layer("conv").kernel.numpy() == 0
    clustered = quiet_cluster(model, 6, CI.KMEANS_PLUS_PLUS, preserve_sparsity=True)
    fit(clustered, x, y, epochs=4, lr=5e-2)
    conv = clustered.layers[0]
    c = conv.centroids()["kernel"].numpy()
    assert np.sum(c == 0.0) == 1  # the zero centroid stayed exactly zero
    k = strip_clustering(clustered).get_layer("conv").kernel.numpy()
    assert np.all(k[zeros] == 0.0)
    assert np.unique(k).size <= 6
    # without preserve_sparsity the zeros take the nearest centroid, which is not zero
    plain = quiet_cluster(model, 6, CI.KMEANS_PLUS_PLUS)
    fit(plain, x, y, epochs=2, lr=5e-2)
    assert (strip_clustering(plain).get_layer("conv").kernel.numpy()[zeros] != 0).mean() > 0.5


def test_cluster_per_channel_gives_k_values_per_output_channel():
    x, y = data()
    clustered = quiet_cluster(tiny_cnn(), 4, CI.LINEAR, cluster_per_channel=True)
    assert clustered.layers[0].centroids()["kernel"].shape == (8, 4)
    assert not clustered.layers[-1].cluster_per_channel  # Conv2D only, as tfmot
    fit(clustered, x, y, epochs=1)
    k = strip_clustering(clustered).get_layer("conv").kernel.numpy()
    assert max_unique_per_channel(k) == 4
    assert np.unique(k).size > 4


# ----------------------------------------------------------- model shapes
def test_nested_functional_and_list_of_layers():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((6,)), L.Dense(8, name="inner_fc")], name="inner")
    inp = keras.Input((6,), name="x")
    out = L.Dense(2, name="head")(L.ReLU()(inner(inp)))
    model = keras.Model(inp, out)
    clustered = cluster_weights(model, 3)
    assert isinstance(clustered.get_layer("inner").layers[0], ClusterWeights)
    assert isinstance(clustered.get_layer("cluster_head"), ClusterWeights)
    assert unique_value_counts(strip_clustering(clustered)) == {"inner/inner_fc/kernel": 3, "head/kernel": 3}
    layers = cluster_weights([L.Dense(3), L.Dropout(0.1)], 4)
    assert [type(l).__name__ for l in layers] == ["ClusterWeights", "Dropout"]


def test_small_layers_are_left_unclustered_with_a_warning():
    model = keras.Sequential([keras.Input((2,)), L.Dense(2, name="tiny_fc"), L.Dense(16, name="wide")])
    with pytest.warns(UserWarning, match="'tiny_fc' .*4 weights, not more than 4 clusters"):
        clustered = cluster_weights(model, 4)
    assert [type(l).__name__ for l in clustered.layers] == ["Dense", "ClusterWeights"]


def test_custom_clusterable_layer():
    class Scaled(L.Dense, ClusterableLayer):
        def get_clusterable_weights(self):
            return [("kernel", self.kernel)]

    wrapped = cluster_weights(Scaled(4, name="scaled"), 3)
    wrapped.build((None, 5))
    assert np.unique(keras.ops.convert_to_numpy(wrapped.clustered_weights()["kernel"])).size == 3


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(number_of_clusters=1), "greater than 1, got 1"),
        (dict(number_of_clusters=2, preserve_sparsity=True), "greater than 2 with preserve_sparsity"),
        (dict(number_of_clusters="8"), "must be an int, got '8'"),
        (dict(number_of_clusters=8, cluster_centroids_init="kmeans"), "one of LINEAR, RANDOM.*got 'kmeans'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ClusteringError, match=match):
        cluster_weights(L.Dense(3), **kwargs)


def test_depthwise_given_by_name_and_unknown_layers_are_errors_naming_them():
    with pytest.raises(ClusteringError, match=r"layer 'dw' \(DepthwiseConv2D\) cannot be clustered: depthwise"):
        cluster_weights(L.DepthwiseConv2D(3, name="dw"), 8)
    lstm = keras.Sequential([keras.Input((4, 3)), L.LSTM(5, name="rnn"), L.Dense(2)])
    with pytest.raises(ClusteringError, match=r"layer 'rnn' \(LSTM\) cannot be clustered"):
        cluster_weights(lstm, 4)

    class MyDense(L.Dense):
        pass

    with pytest.raises(ClusteringError, match="subclasses Dense"):
        cluster_weights(MyDense(3, name="mine"), 4)
    with pytest.raises(ClusteringError, match="got an object of type str"):
        cluster_weights("model", 4)
    with pytest.raises(ClusteringError, match="strip_clustering needs a keras.Model"):
        strip_clustering(L.Dense(3))


# ------------------------------------------------------------- save / load
def test_save_load_keras_and_resume_training(tmp_path):
    x, y = data()
    clustered = quiet_cluster(pruned_cnn(), 5, preserve_sparsity=True)
    fit(clustered, x, y, epochs=1)
    path = str(tmp_path / "clustered.keras")
    clustered.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), clustered.predict(x, verbose=0))
    assert loaded.layers[0].get_config()["cluster_centroids_init"] == "CentroidInitialization.KMEANS_PLUS_PLUS"
    # resume: the optimizer state came back, and one more epoch trains the same in both
    assert int(loaded.optimizer.iterations) == int(clustered.optimizer.iterations) == 4
    clustered.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), clustered.predict(x, verbose=0), atol=1e-5)


def test_clustering_summaries_log_unique_values_and_drift(tmp_path):
    x, y = data()
    clustered = quiet_cluster(tiny_cnn(), 4)
    clustered.compile("adam", "sparse_categorical_crossentropy")
    clustered.fit(x, y, epochs=1, verbose=0, callbacks=[ClusteringSummaries(str(tmp_path), update_freq=2)])
    tags = {}
    for root, _, files in os.walk(tmp_path / "clustering"):
        for f in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, f)):
                for v in event.summary.value:
                    tags[v.tag] = float(tf.make_ndarray(v.tensor))
    assert tags["clustering/conv/kernel/unique_values"] == 4.0
    assert tags["clustering/logits/kernel/centroid_drift"] > 0.0


# ------------------------------------------------------------ centroid init
def test_centroid_inits_as_tfmot_defines_them():
    rng = np.random.default_rng(0)
    w = rng.normal(size=400).astype("float32")
    np.testing.assert_allclose(initial_centroids(w, 5, CI.LINEAR), np.linspace(w.min(), w.max(), 5), rtol=1e-6)
    dense = initial_centroids(w, 8, CI.DENSITY_BASED)
    assert np.all(np.diff(dense) >= 0) and (np.abs(dense) < 1.0).sum() >= 4  # more centroids where weights are dense
    km = initial_centroids(w, 6, "KMEANS_PLUS_PLUS")
    assert np.isin(km, w).all() and np.unique(km).size == 6  # k-means++ picks weights as seeds
    np.testing.assert_array_equal(km, initial_centroids(w, 6, CI.KMEANS_PLUS_PLUS))  # seed 9, as tfmot
    keras.utils.set_random_seed(3)
    r = initial_centroids(w, 6, CI.RANDOM)
    assert r.min() >= w.min() and r.max() <= w.max()
    w[:100] = 0
    sparse = initial_centroids(w, 7, CI.LINEAR, preserve_sparsity=True)
    negatives = int(np.round(6 * (w < 0).sum() / (w != 0).sum()))
    assert sparse[negatives] == 0 and np.all(sparse[:negatives] < 0) and np.all(sparse[negatives + 1 :] > 0)
    assert initial_centroids(w.reshape(40, 10), 3, CI.LINEAR, per_channel=True).shape == (10, 3)


def test_centroid_inits_match_tfmot():
    """The same centroids as tfmot 0.8.1 for the same weights (tests/fixtures/tfmot/make_centroids.py wrote them)."""
    stored = json.loads((Path(__file__).parent / "fixtures" / "tfmot" / "centroids.json").read_text())
    w = np.asarray(stored["weights"], "float32")
    assert (w == 0).mean() > 0.4  # the zeros that preserve_sparsity keeps out of the clusters
    for key, expected in stored["centroids"].items():
        init, sparse = key.split("/")
        ours = initial_centroids(w, 8, init, preserve_sparsity=sparse == "True")
        np.testing.assert_allclose(ours, expected, atol=1e-5, err_msg=key)
