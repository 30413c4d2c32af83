"""Cluster-preserving QAT (CQAT / PCQAT): clusters and zeros survive QAT and int8 conversion."""

import functools

import keras
import numpy as np
import pytest
from quantization_helpers import convert_qat, float_ops

from keras_compress.clustering import cluster_weights, strip_clustering
from keras_compress.clustering.tflite import tflite_kernel_values
from keras_compress.quantization import QuantizeWrapper, quantize_model

L = keras.layers
K = 6


def cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            L.Conv2D(8, 3, padding="same", use_bias=False, name="conv"),
            L.BatchNormalization(name="bn"),
            L.ReLU(name="relu"),
            L.Conv2D(8, 3, padding="same", activation="relu", name="conv2"),
            L.Flatten(name="flat"),
            L.Dense(3, activation="softmax", name="logits"),
        ]
    )


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 2)).astype("float32")
    return x, (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32") + (x[..., 1].mean(axis=(1, 2)) > 0)


def fit(model, x, y, epochs=2, lr=3e-2):
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model


def prune(model, fraction=0.6):
    for layer in model.layers:
        if isinstance(layer, (L.Conv2D, L.Dense)):
            k = layer.kernel.numpy()
            k[np.abs(k) < np.quantile(np.abs(k), fraction)] = 0.0
            layer.kernel.assign(k)
    return model


@functools.cache  # shared by the tests of this file: quantize_model copies it, nothing changes it in place
def clustered_model(sparse):
    x, y = data()
    model = prune(cnn()) if sparse else cnn()
    stripped = strip_clustering(fit(cluster_weights(model, K, preserve_sparsity=sparse), x, y))
    return stripped, x, y


def zero_masks(model):
    """The kernels' zeros in TFLite's layout (conv OHWI, dense (out, in))."""
    masks = {}
    for layer in model.layers:
        if isinstance(layer, L.Conv2D):
            masks[layer.name] = np.transpose(layer.kernel.numpy() == 0, (3, 0, 1, 2))
        elif isinstance(layer, L.Dense):
            masks[layer.name] = layer.kernel.numpy().T == 0
    return masks


@pytest.mark.parametrize("sparse", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["cqat", "pcqat"])
def test_int8_kernels_keep_k_values_per_channel_and_the_zeros(sparse):
    stripped, x, y = clustered_model(sparse)
    qat = quantize_model(stripped, preserve_clusters=True, preserve_sparsity=sparse)
    fit(qat, x, y, epochs=2, lr=5e-2)
    blob = convert_qat(qat)
    assert float_ops(blob) == []
    rows = tflite_kernel_values(blob)
    assert [r["op"] for r in rows] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    for row in rows:
        assert 2 <= row["max_unique_per_channel"] <= K, row["tensor"]
    assert rows[2]["unique"] <= K  # Dense: per tensor
    from keras_compress.report.analysis import weight_sparsity

    report = weight_sparsity(blob)  # the report's per-layer table shows the same counts
    assert [r["unique"] for r in report] == [r["unique"] for r in rows]
    if sparse:
        for row, (name, zeros) in zip(rows, zero_masks(stripped).items()):
            assert zeros.mean() > 0.5
            assert np.all(row["values"][zeros] == 0), name  # every pruned zero is still zero
            assert row["zeros"] <= zeros.mean() + 0.1, name  # (a few more: weights whose centroid is 0)


@pytest.mark.slow  # each of these QAT runs costs 20-35 s: the fast tier keeps cqat above
def test_without_preserve_clusters_qat_spreads_the_values():
    stripped, x, y = clustered_model(False)
    qat = fit(quantize_model(stripped), x, y, epochs=2, lr=5e-2)
    rows = tflite_kernel_values(convert_qat(qat))
    assert max(r["max_unique_per_channel"] for r in rows) > 3 * K


@pytest.mark.slow
def test_preserve_clusters_wrapper_saves_and_loads(tmp_path):
    stripped, x, y = clustered_model(True)
    qat = fit(quantize_model(stripped, preserve_clusters=True, preserve_sparsity=True), x, y, epochs=1)
    conv = qat.get_layer("quant_conv")
    assert isinstance(conv, QuantizeWrapper) and conv.get_config()["preserve_clusters"] == {"kernel": [K]}
    path = str(tmp_path / "pcqat.keras")
    qat.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    effective = keras.ops.convert_to_numpy(loaded.get_layer("quant_conv").kernels()["kernel"])
    assert np.unique(effective).size <= K


def test_unclustered_kernels_are_left_alone():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((300,)), L.Dense(4, name="wide")])
    with pytest.warns(UserWarning, match="'wide' kernel has more than 256 distinct values"):
        qat = quantize_model(model, preserve_clusters=True)
    assert qat.get_layer("quant_wide").scheme.clusters == {}
