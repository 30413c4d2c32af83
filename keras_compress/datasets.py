"""Offline datasets and loaders.

Two datasets need no download, so the demo, the tests and the recipes run on a
machine with no network:

- :func:`load_digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 real
  images, 10 classes) resized to 32x32x1.
- :func:`load_shapes`: a deterministic synthetic 32x32x3 image set of ten shape
  classes with random colours, sizes, positions, clutter and noise; hard enough
  that a small CNN lands around 85-95%.

:func:`load_dataset` accepts any of: those names, a ``keras.datasets`` name
(``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``: need the network the first
time), a folder of images (one sub-folder per class), a ``(x, y)`` tuple of
arrays, or a ``tf.data.Dataset`` of ``(image, label)`` pairs. Every loader
returns ``((x_train, y_train), (x_test, y_test))`` with float32 images scaled to
[0, 1] in NHWC layout and int32 labels.

Example:
    >>> from keras_compress.datasets import load_digits
    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape[1:], x_train.dtype.name, int(y_train.max())
    ((32, 32, 1), 'float32', 9)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from keras_compress.errors import DatasetError

__all__ = [
    "load_digits",
    "load_shapes",
    "load_arrays",
    "load_image_folder",
    "load_tf_dataset",
    "load_keras_dataset",
    "load_dataset",
    "SHAPE_CLASSES",
    "KERAS_DATASETS",
    "DATASET_NAMES",
]

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

SHAPE_CLASSES = (
    "disc",
    "ring",
    "square",
    "frame",
    "triangle",
    "diamond",
    "cross",
    "x",
    "hbars",
    "vbars",
)

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
#: Every dataset :func:`load_dataset` knows by name (a folder path works too).
DATASET_NAMES = ("digits", "shapes", *KERAS_DATASETS)

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _split(x: np.ndarray, y: np.ndarray, test_split: float, seed: int) -> Split:
    """Stratified, seeded train/test split."""
    if not 0.0 < test_split < 1.0:
        raise DatasetError(f"test_split must be in (0, 1), got {test_split!r}")
    rng = np.random.default_rng(seed)
    test_idx = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        test_idx.append(idx[: max(1, int(round(len(idx) * test_split)))])
    test_mask = np.zeros(len(y), dtype=bool)
    test_mask[np.concatenate(test_idx)] = True
    train_idx = rng.permutation(np.flatnonzero(~test_mask))
    test_idx = rng.permutation(np.flatnonzero(test_mask))
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])


def _resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a batch of NHWC images to ``size`` x ``size`` (bilinear, align_corners=False)."""
    n, h, w, c = images.shape
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[None, :, None, None]
    wx = (xs - x0)[None, None, :, None]
    top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
    bottom = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def load_digits(image_size: int = 32, test_split: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's bundled handwritten digits, resized for a CNN.

    The 1,797 8x8 grey images (values 0-16) ship inside scikit-learn, so no
    download is needed. They are scaled to [0, 1], resized bilinearly to
    ``image_size`` x ``image_size`` x 1 and split, stratified by class.

    Args:
        image_size: side of the returned square images.
        test_split: fraction of each class held out for the test split.
        seed: seed of the split.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, float32 NHWC images, int32 labels.
    """
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetError("load_digits needs scikit-learn: pip install scikit-learn") from e
    bunch = _sk_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    if image_size != 8:
        x = _resize_bilinear(x, int(image_size))
    y = bunch.target.astype(np.int32)
    return _split(x, y, test_split, seed)


def _shape_masks(kind: np.ndarray, yy, xx, cy, cx, r, thick, angle) -> np.ndarray:
    """Boolean masks (n, H, W) for a batch of shapes of the given class ids."""
    dy = yy[None] - cy[:, None, None]
    dx = xx[None] - cx[:, None, None]
    ca, sa = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = ca * dx + sa * dy  # rotated coordinates
    v = -sa * dx + ca * dy
    r = r[:, None, None]
    t = thick[:, None, None]
    dist = np.sqrt(dx**2 + dy**2)
    cheb = np.maximum(np.abs(u), np.abs(v))
    manh = np.abs(u) + np.abs(v)
    masks = np.zeros(dx.shape, dtype=bool)
    k = kind[:, None, None]
    masks |= (k == 0) & (dist <= r)
    masks |= (k == 1) & (dist <= r) & (dist >= r - t)
    masks |= (k == 2) & (cheb <= r * 0.85)
    masks |= (k == 3) & (cheb <= r * 0.85) & (cheb >= r * 0.85 - t)
    # Triangle: apex up in rotated frame, base at v = +r/2.
    tri = (v <= r * 0.55) & (v >= -r) & (np.abs(u) <= (v + r) * 0.6)
    masks |= (k == 4) & tri
    masks |= (k == 5) & (manh <= r)
    masks |= (k == 6) & (((np.abs(u) <= t / 2 + 0.5) | (np.abs(v) <= t / 2 + 0.5)) & (cheb <= r))
    diag1, diag2 = np.abs(u - v) / np.sqrt(2), np.abs(u + v) / np.sqrt(2)
    masks |= (k == 7) & (((diag1 <= t / 2 + 0.5) | (diag2 <= t / 2 + 0.5)) & (cheb <= r * 0.8))
    # Bars: parallel stripes, horizontal or vertical in the *unrotated* frame
    # (small jitter only), so the two classes differ by orientation.
    period = np.maximum(t * 2.2, 3.0)
    hb = (np.mod(dy + r, period) < period / 2) & (np.abs(dx) <= r) & (np.abs(dy) <= r)
    vb = (np.mod(dx + r, period) < period / 2) & (np.abs(dx) <= r) & (np.abs(dy) <= r)
    masks |= (k == 8) & hb
    masks |= (k == 9) & vb
    return masks


def load_shapes(
    seed: int = 0,
    n_train: int = 5000,
    n_test: int = 1000,
    image_size: int = 32,
    noise: float = 0.08,
) -> Split:
    """A deterministic synthetic 32x32x3 dataset of ten shape classes.

    Each image holds one shape (see :data:`SHAPE_CLASSES`) with a random colour,
    size, position and rotation, over a random coloured background with a
    gradient, a small distractor blob, and Gaussian noise. Colour carries no
    class information, so a model must learn form. Same seed, same data.

    Args:
        seed: seed of the generator; the test split uses a derived seed, so the
            two splits never share images.
        n_train: number of training images.
        n_test: number of test images.
        image_size: side of the square images.
        noise: standard deviation of the additive Gaussian pixel noise.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, float32 NHWC images in
        [0, 1], int32 labels 0-9.
    """
    if n_train < 1 or n_test < 1:
        raise DatasetError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    return (
        _make_shapes(np.random.default_rng([seed, 0]), n_train, image_size, noise),
        _make_shapes(np.random.default_rng([seed, 1]), n_test, image_size, noise),
    )


def _make_shapes(rng: np.random.Generator, n: int, size: int, noise: float):
    labels = rng.integers(0, len(SHAPE_CLASSES), size=n).astype(np.int32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = rng.uniform(0.22, 0.38, n) * size
    cy = rng.uniform(r, size - r)
    cx = rng.uniform(r, size - r)
    thick = rng.uniform(2.0, 3.5, n)
    # Only triangles turn freely: a square turned 45 degrees is a diamond, a cross
    # is an x, and hbars are vbars, so those classes get a small jitter only.
    jitter = rng.uniform(-0.2, 0.2, n)
    angle = np.where(labels == 4, rng.uniform(-np.pi, np.pi, n), jitter)
    out = np.empty((n, size, size, 3), dtype=np.float32)
    chunk = 512
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        m = _shape_masks(labels[s:e], yy, xx, cy[s:e], cx[s:e], r[s:e], thick[s:e], angle[s:e])
        k = e - s
        bg = rng.uniform(0.0, 1.0, (k, 1, 1, 3)).astype(np.float32)
        grad_dir = rng.normal(size=(k, 2)).astype(np.float32)
        grad = (grad_dir[:, 0, None, None] * (yy / size - 0.5) + grad_dir[:, 1, None, None] * (xx / size - 0.5))
        bg = bg + 0.25 * grad[..., None]
        # Foreground colour differs from the background by a random but visible margin.
        fg = np.clip(bg.mean(axis=(1, 2), keepdims=True) + rng.choice([-1, 1], (k, 1, 1, 3)) * rng.uniform(0.25, 0.6, (k, 1, 1, 3)), 0, 1)
        img = np.where(m[..., None], fg, bg)
        # Distractor: a small blob of another colour somewhere.
        by, bx = rng.uniform(0, size, k), rng.uniform(0, size, k)
        br = rng.uniform(1.0, 2.5, k)
        blob = ((yy[None] - by[:, None, None]) ** 2 + (xx[None] - bx[:, None, None]) ** 2) <= br[:, None, None] ** 2
        img = np.where(blob[..., None], rng.uniform(0, 1, (k, 1, 1, 3)).astype(np.float32), img)
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
        out[s:e] = np.clip(img, 0.0, 1.0)
    return out, labels


def _as_images(x: Any, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(f"{where}: expected images of shape (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        x = x.astype(np.float32) / (255.0 if x.max(initial=0) > 1 else 1.0)
    return x.astype(np.float32)


def load_arrays(x: Any, y: Any, test_split: float = 0.2, seed: int = 0) -> Split:
    """Split in-memory arrays: ``x`` (N, H, W[, C]) images, ``y`` (N,) integer labels.

    uint8 images are scaled to [0, 1]; float images are kept as they are.
    """
    x = _as_images(x, "load_arrays(x)")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(-1).astype(np.int32)
    if len(x) != len(y):
        raise DatasetError(f"load_arrays: x has {len(x)} images but y has {len(y)} labels")
    return _split(x, y, test_split, seed)


def load_tf_dataset(dataset: Any, test_split: float = 0.2, seed: int = 0, limit: int | None = None) -> Split:
    """Materialize a ``tf.data.Dataset`` of ``(image, label)`` pairs (batched or not) and split it."""
    xs, ys = [], []
    for item in dataset.as_numpy_iterator():
        if not (isinstance(item, tuple) and len(item) == 2):
            raise DatasetError(f"load_tf_dataset: expected (image, label) elements, got {type(item).__name__}")
        x, y = item
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim in (2, 3) and y.ndim == 0:  # unbatched element
            x, y = x[None], y[None]
        xs.append(x)
        ys.append(y)
        if limit is not None and sum(len(v) for v in ys) >= limit:
            break
    if not xs:
        raise DatasetError("load_tf_dataset: the dataset is empty")
    return load_arrays(np.concatenate(xs), np.concatenate(ys), test_split, seed)


def load_image_folder(
    folder: str | os.PathLike,
    image_size: tuple[int, int] | int | None = None,
    color_mode: str = "rgb",
    test_split: float = 0.2,
    seed: int = 0,
) -> Split:
    """Load ``folder/<class_name>/*.png|jpg|...``; labels follow sorted class-folder names.

    Images are read with Pillow (a matplotlib dependency). All images are resized
    to ``image_size`` (default: the first image's size).
    """
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: expected a folder with one sub-folder of images per class, found no such folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{root}: expected one sub-folder per class, found none")
    if color_mode not in ("rgb", "grayscale"):
        raise DatasetError(f"color_mode must be 'rgb' or 'grayscale', got {color_mode!r}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() not in _IMAGE_EXTENSIONS:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("RGB" if color_mode == "rgb" else "L")
                    if image_size is None:
                        image_size = (im.height, im.width)
                    if (im.height, im.width) != tuple(image_size):
                        im = im.resize((image_size[1], image_size[0]), Image.BILINEAR)
                    a = np.asarray(im, dtype=np.float32) / 255.0
            except OSError as e:
                raise DatasetError(f"{f}: could not read the image ({e})") from e
            xs.append(a if a.ndim == 3 else a[..., None])
            ys.append(label)
    if not xs:
        raise DatasetError(f"{root}: found no images ({', '.join(_IMAGE_EXTENSIONS)}) in the class folders {classes}")
    return _split(np.stack(xs), np.asarray(ys, dtype=np.int32), test_split, seed)


def load_keras_dataset(name: str) -> Split:
    """``keras.datasets`` by name (mnist, fashion_mnist, cifar10), scaled to [0, 1], NHWC.

    These download on first use (then load from ``~/.keras/datasets``). With no
    network and no cached copy, this raises :class:`DatasetError` saying so and
    pointing at the offline datasets.
    """
    if name not in KERAS_DATASETS:
        raise DatasetError(f"unknown keras dataset {name!r}; expected one of {', '.join(KERAS_DATASETS)}")
    import keras

    module = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as e:  # network errors come as many types (URLError, OSError, Exception)
        raise DatasetError(
            f"keras.datasets.{name}: the download failed ({type(e).__name__}: {e}). "
            "This machine may be offline; use load_digits() or load_shapes(), which need no download, "
            "or a folder of images."
        ) from e
    return (
        (_as_images(x_train, name), np.asarray(y_train).reshape(-1).astype(np.int32)),
        (_as_images(x_test, name), np.asarray(y_test).reshape(-1).astype(np.int32)),
    )


def load_dataset(source: Any, **kwargs: Any) -> Split:
    """Load a dataset from a name, a folder, arrays or a tf.data.Dataset.

    Args:
        source: ``"digits"``, ``"shapes"``, a ``keras.datasets`` name, a folder
            path, an ``(x, y)`` tuple, or a ``tf.data.Dataset``.
        **kwargs: passed to the matching loader.
    """
    if isinstance(source, str):
        if source == "digits":
            return load_digits(**kwargs)
        if source == "shapes":
            return load_shapes(**kwargs)
        if source in KERAS_DATASETS:
            return load_keras_dataset(source, **kwargs)
        if os.path.isdir(source):
            return load_image_folder(source, **kwargs)
        raise DatasetError(
            f"unknown dataset {source!r}: expected 'digits', 'shapes', one of {', '.join(KERAS_DATASETS)}, "
            "or an existing folder of images"
        )
    if isinstance(source, os.PathLike):
        return load_image_folder(source, **kwargs)
    if isinstance(source, tuple) and len(source) == 2:
        return load_arrays(*source, **kwargs)
    if hasattr(source, "as_numpy_iterator"):
        return load_tf_dataset(source, **kwargs)
    raise DatasetError(
        f"cannot load a dataset from {type(source).__name__}: expected a name, a folder, (x, y) arrays or a tf.data.Dataset"
    )
