"""Representative (calibration) data for post-training quantization.

Accepts a numpy array ``(N, *input_shape)``, a list/tuple of arrays (one per
model input), a ``tf.data.Dataset`` (batched or not; ``(x, y)`` pairs are fine,
labels are dropped), or any iterable of such batches. Everything is checked
against the model's inputs before the converter sees it, so a mismatch is
reported as a shape, not as a converter crash halfway through.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from keras_compress.errors import CalibrationDataError

__all__ = ["calibration_samples", "representative_dataset"]


def _input_specs(model) -> list[tuple[tuple, str]]:
    """(shape without batch, name) of each model input."""
    specs = []
    for t in model.inputs:
        specs.append((tuple(t.shape[1:]), getattr(t, "name", "input")))
    return specs


def _check_batch(arrays: list[np.ndarray], specs, where: str) -> list[np.ndarray]:
    if len(arrays) != len(specs):
        raise CalibrationDataError(f"{where}: the model has {len(specs)} input(s), the calibration data gives {len(arrays)}")
    out = []
    for a, (shape, name) in zip(arrays, specs):
        a = np.asarray(a)
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise CalibrationDataError(f"{where}: input {name!r} expects numeric data, got dtype {a.dtype}")
        if a.ndim == len(shape):  # a single sample: add the batch axis
            a = a[None]
        ok = a.ndim == len(shape) + 1 and all(s is None or s == d for s, d in zip(shape, a.shape[1:]))
        if not ok:
            expected = "(N, " + ", ".join("?" if s is None else str(s) for s in shape) + ")"
            raise CalibrationDataError(f"{where}: input {name!r} expects shape {expected}, received {tuple(a.shape)}")
        out.append(a.astype(np.float32))
    return out


def _batches(data: Any) -> Iterator[list[np.ndarray]]:
    """Yield lists of arrays (one per input) from any accepted form."""
    if isinstance(data, np.ndarray):
        yield [data]
        return
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, np.ndarray) for d in data):
        yield list(data)
        return
    if hasattr(data, "as_numpy_iterator"):
        data = data.as_numpy_iterator()
    try:
        it = iter(data)
    except TypeError:
        raise CalibrationDataError(
            f"representative_data: expected a numpy array, a list of arrays, a tf.data.Dataset or an iterable of batches; "
            f"got {type(data).__name__}"
        ) from None
    for item in it:
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[1], (list, tuple, dict)):
            # (x, y) pairs from a labelled dataset: keep x.
            x = item[0]
            yield list(x) if isinstance(x, (list, tuple)) else [x]
        elif isinstance(item, (list, tuple)):
            yield list(item)
        else:
            yield [item]


def calibration_samples(model, data: Any, num_samples: int) -> list[list[np.ndarray]]:
    """Check ``data`` against ``model`` and cut it into at most ``num_samples`` single samples.

    Returns a list of samples, each a list of float32 arrays of batch 1.
    """
    if num_samples < 1:
        raise CalibrationDataError(f"num_calibration_samples must be >= 1, got {num_samples}")
    specs = _input_specs(model)
    samples: list[list[np.ndarray]] = []
    for i, batch in enumerate(_batches(data)):
        arrays = _check_batch(batch, specs, f"representative_data (batch {i})")
        n = len(arrays[0])
        for j in range(n):
            samples.append([a[j : j + 1] for a in arrays])
            if len(samples) >= num_samples:
                return samples
    if not samples:
        raise CalibrationDataError("representative_data: no samples found (empty array or dataset)")
    return samples


def representative_dataset(samples: list[list[np.ndarray]], verbose: bool = True):
    """A converter ``representative_dataset`` callable over ``samples``, with a progress line."""

    def gen():
        n = len(samples)
        step = max(1, n // 20)
        for i, s in enumerate(samples, 1):
            if verbose and (i % step == 0 or i == n):
                sys.stderr.write(f"\rcalibrating: {i}/{n} samples")
                if i == n:
                    sys.stderr.write("\n")
                sys.stderr.flush()
            yield s

    return gen
