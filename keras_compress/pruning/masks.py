"""Mask math: magnitude, block and m-by-n masks (tfmot's ``pruning_impl.py``).

All functions take a weight tensor (or variable) and return a mask of the
same shape with 1 for kept and 0 for pruned weights, computed with
``keras.ops``. Unlike tfmot's threshold comparison, the magnitude mask keeps
exactly ``k = max(round(size * (1 - sparsity)), 1)`` weights (the top-k
indices), so ties (for example many weights that are already zero) can never
un-prune weights or overshoot the sparsity.

Example:
    >>> import numpy as np
    >>> w = np.array([[0.1, -0.9], [0.5, -0.2]], "float32")
    >>> mask, threshold = magnitude_mask(w, 0.5)
    >>> np.asarray(mask).tolist(), float(threshold)
    ([[0.0, 1.0], [1.0, 0.0]], 0.5)
"""

from __future__ import annotations

import math

from keras import ops

from keras_compress.errors import PruningError

__all__ = ["block_mask", "kept_count", "m_by_n_mask", "magnitude_mask"]


def kept_count(size: int, sparsity: float) -> int:
    """Number of weights a mask of ``sparsity`` keeps out of ``size`` (at least 1)."""
    return max(round(size * (1.0 - float(sparsity))), 1)


def magnitude_mask(weights, sparsity: float):
    """Keeps the ``1 - sparsity`` fraction of weights with the largest magnitude.

    Args:
        weights: Tensor or variable.
        sparsity: Fraction to prune, a Python float in [0, 1).

    Returns:
        ``(mask, threshold)``: the mask (dtype of ``weights``) and the smallest
        kept magnitude.
    """
    weights = ops.convert_to_tensor(weights)
    shape = ops.shape(weights)
    size = int(math.prod(shape))
    flat = ops.reshape(ops.abs(weights), (size,))
    k = kept_count(size, sparsity)
    if k >= size:
        return ops.ones(shape, dtype=weights.dtype), ops.min(flat)
    values, indices = ops.top_k(flat, k, sorted=True)
    mask = ops.scatter(
        ops.expand_dims(indices, -1), ops.ones((k,), dtype=weights.dtype), (size,)
    )
    return ops.reshape(mask, shape), values[k - 1]


def block_mask(weights, sparsity: float, block_size=(1, 1), pooling: str = "AVG"):
    """Prunes whole ``block_size`` blocks of a 2-D weight by pooled magnitude.

    Block pruning applies to weights that are 2-D after squeezing unit
    dimensions (Dense kernels, 1x1 convolutions), as in tfmot. Blocks at the
    edge may be partial; their pooled value uses the weights present.

    Returns:
        ``(mask, threshold)`` as :func:`magnitude_mask`, the threshold being
        the smallest kept pooled magnitude.
    """
    bh, bw = int(block_size[0]), int(block_size[1])
    if (bh, bw) == (1, 1):
        return magnitude_mask(weights, sparsity)
    weights = ops.convert_to_tensor(weights)
    shape = tuple(ops.shape(weights))
    squeezed = tuple(d for d in shape if d != 1)
    if len(squeezed) != 2:
        raise PruningError(
            f"block_size {block_size} needs a weight that is 2-D after squeezing, got shape {shape}"
        )
    rows, cols = squeezed
    a = ops.reshape(ops.abs(weights), squeezed)
    pad_r, pad_c = (-rows) % bh, (-cols) % bw
    ones = ops.ones(squeezed, dtype=a.dtype)
    if pad_r or pad_c:
        a = ops.pad(a, [[0, pad_r], [0, pad_c]])
        ones = ops.pad(ones, [[0, pad_r], [0, pad_c]])
    gr, gc = (rows + pad_r) // bh, (cols + pad_c) // bw
    blocks = ops.reshape(a, (gr, bh, gc, bw))
    if pooling == "MAX":
        pooled = ops.max(blocks, axis=(1, 3))
    else:  # AVG over the weights present (partial edge blocks)
        count = ops.sum(ops.reshape(ones, (gr, bh, gc, bw)), axis=(1, 3))
        pooled = ops.sum(blocks, axis=(1, 3)) / count
    pooled_mask, threshold = magnitude_mask(pooled, sparsity)
    full = ops.repeat(ops.repeat(pooled_mask, bh, axis=0), bw, axis=1)
    full = full[:rows, :cols]
    return ops.reshape(ops.cast(full, weights.dtype), shape), threshold


def m_by_n_mask(weights, m_by_n=(2, 4), axis: int = -2):
    """Zeroes the ``m`` smallest of every ``n`` consecutive weights along ``axis``.

    ``(2, 4)`` is the 2:4 pattern of sparse tensor cores: 2 zeros in each
    group of 4 consecutive input channels. As in tfmot, ``m`` counts zeros.
    A dimension that is not a multiple of ``n`` ends with a shorter group in
    which at most ``m`` weights are zeroed.

    Args:
        weights: Tensor or variable.
        m_by_n: ``(m, n)`` with ``0 < m < n``.
        axis: The input-channel axis the groups run along.

    Example:
        >>> import numpy as np
        >>> w = np.array([[1.0, -4.0, 2.0, 0.5]], "float32").T   # (4 inputs, 1 unit)
        >>> np.asarray(m_by_n_mask(w, (2, 4), axis=0)).ravel().tolist()
        [0.0, 1.0, 1.0, 0.0]
    """
    m, n = int(m_by_n[0]), int(m_by_n[1])
    weights = ops.convert_to_tensor(weights)
    a = ops.moveaxis(ops.abs(weights), axis, -1)
    moved_shape = tuple(ops.shape(a))
    length = moved_shape[-1]
    pad = (-length) % n
    rows = int(math.prod(moved_shape[:-1]))
    a = ops.reshape(a, (rows, length))
    if pad:
        # Padding gets -1 so it is always among the zeroed slots of its group.
        a = ops.pad(a, [[0, 0], [0, pad]], constant_values=-1.0)
    groups = ops.reshape(a, (rows * (length + pad) // n, n))
    _, keep_idx = ops.top_k(groups, n - m, sorted=False)
    keep = ops.sum(ops.one_hot(keep_idx, n, dtype=weights.dtype), axis=-2)
    keep = ops.reshape(keep, (rows, length + pad))[:, :length]
    keep = ops.reshape(keep, moved_shape)
    return ops.moveaxis(keep, -1, axis)
