"""Offline datasets and loaders."""

from __future__ import annotations

import numpy as np
import pytest

from keras_compress import datasets
from keras_compress.errors import DatasetError


def test_digits(digits):
    (x, y), (xt, yt) = digits
    assert x.shape[1:] == (32, 32, 1) and x.dtype == np.float32
    assert len(x) + len(xt) == 1797
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10)) == set(np.unique(yt))
    assert abs(len(xt) / 1797 - 0.2) < 0.01


def test_shapes_is_deterministic_and_balanced():
    (x, y), (xt, yt) = datasets.load_shapes(seed=3, n_train=400, n_test=100)
    (x2, y2), _ = datasets.load_shapes(seed=3, n_train=400, n_test=100)
    (x3, _), _ = datasets.load_shapes(seed=4, n_train=400, n_test=100)
    assert x.shape == (400, 32, 32, 3) and xt.shape == (100, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, x3)
    assert not any(np.array_equal(a, b) for a in xt[:10] for b in x[:50])  # train and test differ
    counts = np.bincount(y, minlength=10)
    assert counts.min() > 20
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_shapes_colour_carries_no_label():
    """A model must learn form: the mean colour of an image does not predict its class."""
    (x, y), _ = datasets.load_shapes(seed=0, n_train=2000, n_test=10)
    means = x.mean(axis=(1, 2))
    per_class = np.stack([means[y == k].mean(0) for k in range(10)])
    assert np.ptp(per_class, axis=0).max() < 0.08


def test_load_arrays_uint8_and_onehot():
    x = np.random.default_rng(0).integers(0, 256, (50, 8, 8), dtype=np.uint8)
    y = np.eye(5)[np.arange(50) % 5]
    (xtr, ytr), (xte, yte) = datasets.load_arrays(x, y, test_split=0.2)
    assert xtr.shape[1:] == (8, 8, 1) and xtr.max() <= 1.0
    assert len(xtr) + len(xte) == 50 and ytr.dtype == np.int32
    with pytest.raises(DatasetError, match="3 labels"):
        datasets.load_arrays(x, y[:3])
    with pytest.raises(DatasetError, match=r"\(N, H, W\)"):
        datasets.load_arrays(np.zeros((4, 2)), np.zeros(4))


def test_load_tf_dataset():
    import tensorflow as tf

    x = np.random.default_rng(0).random((30, 6, 6, 3)).astype(np.float32)
    y = np.arange(30) % 3
    (a, b), (c, d) = datasets.load_tf_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(7))
    assert len(a) + len(c) == 30 and a.shape[1:] == (6, 6, 3)
    (a2, _), (c2, _) = datasets.load_dataset(tf.data.Dataset.from_tensor_slices((x, y)))
    assert len(a2) + len(c2) == 30


def test_load_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (x, y), (xt, yt) = datasets.load_dataset(str(tmp_path), image_size=8)
    assert x.shape[1:] == (8, 8, 3) and len(x) + len(xt) == 10
    assert set(np.concatenate([y, yt])) == {0, 1}
    (x, _), _ = datasets.load_image_folder(tmp_path, color_mode="grayscale")
    assert x.shape[1:] == (12, 10, 1)
    (tmp_path / "cat" / "broken.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="broken.png"):
        datasets.load_image_folder(tmp_path)


def test_missing_folder_and_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        datasets.load_image_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="'digts'"):
        datasets.load_dataset("digts")


def test_keras_dataset_offline_gives_a_clear_error(monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DatasetError) as e:
        datasets.load_dataset("mnist")
    msg = str(e.value)
    assert "keras.datasets.mnist" in msg and "offline" in msg and "load_digits" in msg


def test_keras_dataset_when_available(monkeypatch):
    import keras

    fake = ((np.zeros((6, 28, 28), np.uint8), np.arange(6)), (np.full((2, 28, 28), 255, np.uint8), np.arange(2)))
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", lambda: fake)
    (x, y), (xt, yt) = datasets.load_keras_dataset("fashion_mnist")
    assert x.shape == (6, 28, 28, 1) and xt.max() == 1.0 and y.dtype == np.int32
