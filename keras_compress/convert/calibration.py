"""Representative (calibration) data for post-training quantization.

Accepts a numpy array ``(N, *input_shape)``, a list/tuple of arrays (one per
model input), a ``tf.data.Dataset`` (batched or not; ``(x, y)`` pairs are fine,
labels are dropped), or any iterable of such batches. Everything is checked
against the model's inputs before the converter sees it, so a mismatch is
reported as a shape, not as a converter crash halfway through. Non-finite
values (inf crashes TF's converter, NaN calibrates nonsense) are an error that
names the sample; values of absurd magnitude (an int8 scale so large that the
model's outputs collapse to zero) are a warning that gives the range found.
Integer inputs (token ids of an ``Embedding``) keep an integer dtype.

Example:
    >>> import keras, numpy as np
    >>> from keras_compress.convert.calibration import calibration_samples
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> len(calibration_samples(m, np.zeros((5, 3)), 4))
    4
    >>> bad = np.zeros((5, 3)); bad[2, 1] = np.inf
    >>> calibration_samples(m, bad, 4)
    Traceback (most recent call last):
    ...
    keras_compress.errors.CalibrationDataError: representative_data: sample 2 ...
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from keras_compress.errors import CalibrationDataError

__all__ = ["ABSURD_MAGNITUDE", "calibration_samples", "representative_dataset"]

#: Calibration values beyond this magnitude get a warning: an int8 scale of
#: (range / 255) this large rounds every real activation to zero.
ABSURD_MAGNITUDE = 1e6


def is_integer_dtype(dtype) -> bool:
    """True for an integer (not bool) dtype, given as numpy/TF dtype or name."""
    try:
        return np.issubdtype(np.dtype(str(getattr(dtype, "name", dtype))), np.integer)
    except TypeError:
        return False


def _input_specs(model) -> list[tuple[tuple, str, bool]]:
    """(shape without batch, name, is_integer) of each model input."""
    return [(tuple(t.shape[1:]), getattr(t, "name", "input"), is_integer_dtype(t.dtype)) for t in model.inputs]


def _as_input_dtype(a: np.ndarray, name: str, integer: bool, where: str) -> np.ndarray:
    """float32 for float inputs; int32 for integer inputs (refusing non-integral values)."""
    if not integer:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a) & (a == np.round(a))):
        raise CalibrationDataError(
            f"{where}: input {name!r} is an integer input (e.g. token ids); the calibration data has non-integral values"
        )
    return a.astype(np.int32)


def _check_batch(arrays: list[np.ndarray], specs, where: str) -> list[np.ndarray]:
    if len(arrays) != len(specs):
        raise CalibrationDataError(f"{where}: the model has {len(specs)} input(s), the calibration data gives {len(arrays)}")
    out = []
    for a, (shape, name, integer) in zip(arrays, specs):
        a = np.asarray(a)
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise CalibrationDataError(f"{where}: input {name!r} expects numeric data, got dtype {a.dtype}")
        if a.ndim == len(shape):  # a single sample: add the batch axis
            a = a[None]
        ok = a.ndim == len(shape) + 1 and all(s is None or s == d for s, d in zip(shape, a.shape[1:]))
        if not ok:
            expected = "(N, " + ", ".join("?" if s is None else str(s) for s in shape) + ")"
            raise CalibrationDataError(f"{where}: input {name!r} expects shape {expected}, received {tuple(a.shape)}")
        out.append(_as_input_dtype(a, name, integer, where))
    return out


def _first_non_finite(arrays: list[np.ndarray], specs, first_index: int) -> None:
    """Raise naming the first sample (counted over all batches) with inf or NaN."""
    for a, (_, name, _) in zip(arrays, specs):
        if not np.issubdtype(a.dtype, np.floating):
            continue
        bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        if bad.any():
            j = int(np.argmax(bad))
            kinds = " and ".join(k for k, f in (("inf", np.isinf), ("NaN", np.isnan)) if f(a[j]).any())
            raise CalibrationDataError(
                f"representative_data: sample {first_index + j} (input {name!r}) contains {kinds}; calibration needs "
                "finite values (inf crashes TFLite's converter, NaN calibrates nonsense): drop or clean that sample"
            )


def _warn_absurd_range(samples: list[list[np.ndarray]], specs) -> None:
    for i, (_, name, integer) in enumerate(specs):
        if integer:
            continue
        lo = min(float(s[i].min()) for s in samples)
        hi = max(float(s[i].max()) for s in samples)
        if max(abs(lo), abs(hi)) > ABSURD_MAGNITUDE:
            warnings.warn(
                f"representative_data: input {name!r} ranges over [{lo:.3g}, {hi:.3g}]; an int8 scale of "
                f"{(hi - lo) / 255:.3g} per step rounds typical activations to zero, so the converted model's outputs "
                "may all be zero. Give data scaled as in training.",
                UserWarning,
                stacklevel=4,
            )


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

    Returns a list of samples, each a list of arrays of batch 1 (float32, or
    int32 for integer inputs).

    Raises:
        CalibrationDataError: wrong count, shape or dtype; inf or NaN (naming the sample).
    """
    if num_samples < 1:
        raise CalibrationDataError(f"num_calibration_samples must be >= 1, got {num_samples}")
    specs = _input_specs(model)
    samples: list[list[np.ndarray]] = []
    for i, batch in enumerate(_batches(data)):
        arrays = _check_batch(batch, specs, f"representative_data (batch {i})")
        arrays = [a[: num_samples - len(samples)] for a in arrays]
        _first_non_finite(arrays, specs, len(samples))
        samples.extend([a[j : j + 1] for a in arrays] for j in range(len(arrays[0])))
        if len(samples) >= num_samples:
            break
    if not samples:
        raise CalibrationDataError("representative_data: no samples found (empty array or dataset)")
    _warn_absurd_range(samples, specs)
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
