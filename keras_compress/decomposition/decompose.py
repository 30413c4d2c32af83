"""`decompose`: factorize Dense and Conv layers into two smaller ones (truncated SVD)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from keras_compress.decomposition.factor_layers import factor_layers, factor_names
from keras_compress.decomposition.plan import plan_entries, walk
from keras_compress.decomposition.rebuild import replace_layers
from keras_compress.errors import DecompositionError

__all__ = ["decompose"]

log = logging.getLogger("keras_compress")


def _check_names(model, chosen: dict) -> None:
    """The factors' names must not collide with a layer that stays in the same (sub)model."""
    for _, layer, parent in walk(model):
        if id(layer) not in chosen:
            continue
        staying = {other.name for other in parent.layers if id(other) not in chosen}
        for new in factor_names(layer.name):
            if new in staying:
                raise DecompositionError(
                    f"layer '{layer.name}': its factors would be named '{new}', which model "
                    f"'{parent.name}' already has; rename that layer first"
                )


def decompose(model, *, rank: int | None = None, energy: float | None = None, ratio: float | None = None,
              layers: Any = None, method: str = "auto", verbose: bool = False):
    """Factorizes Dense / Conv layers into two smaller layers and returns a plain Keras model.

    Dense ``(n_in, n_out)`` becomes Dense ``(n_in, r, use_bias=False)`` then
    Dense ``(r, n_out)``, by truncated SVD. A Conv ``k x k, C_in -> C_out``
    becomes either ``k x k, C_in -> r`` then ``1 x 1, r -> C_out`` (channel)
    or ``k_h x 1, C_in -> r`` then ``1 x k_w, r -> C_out`` (spatial);
    ``method="auto"`` picks per layer (see
    :mod:`keras_compress.decomposition.rank`). ``conv3`` becomes ``conv3_a``
    and ``conv3_b``; the second factor carries the bias and activation, and a
    BatchNormalization that follows stays after it, unfolded (QAT and the
    converter fold it into the second factor). Layers where no factorization saves MACs, or that cannot
    be factorized, are left alone and listed in a warning
    (:func:`~keras_compress.decomposition.plan_decomposition` returns the same
    decisions as data).

    The result holds only built-in layers: fine-tune it with ``fit`` (or a
    :class:`~keras_compress.distillation.Distiller` from the original, the
    recommended recovery), prune it, quantize it, convert it.

    Args:
        model: a built Sequential or Functional model; nested models are entered.
        rank: fixed rank for every selected layer.
        energy: per layer, the smallest rank keeping this fraction of the
            squared singular values, in (0, 1].
        ratio: per layer, the largest rank whose MACs are at most ``ratio``
            times the layer's, in (0, 1).
        layers: ``None`` (every Dense / Conv1D / Conv2D / Conv3D), names or
            regular expressions, or a dict name-or-regex -> setting (int rank,
            float ratio, dict with ``rank`` / ``energy`` / ``ratio`` / ``method``,
            or ``None`` to leave alone); first match wins.
        method: ``"auto"``, ``"channel"`` or ``"spatial"`` for Conv layers.
        verbose: print one line per layer.

    Returns:
        A new model (Sequential stays Sequential), compiled like ``model`` if
        ``model`` was compiled. ``model`` is unchanged.

    Raises:
        DecompositionError: a bad setting; a layer named exactly in ``layers``
            that cannot be factorized (the reason is given); a pattern that
            matches nothing; a subclassed model.

    Example:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((16, 16, 8)),
        ...     keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv"),
        ...     keras.layers.Flatten(), keras.layers.Dense(10, name="fc")])
        >>> small = decompose(model, ratio=0.5, layers=["conv"])
        >>> [l.name for l in small.layers]  # doctest: +ELLIPSIS
        ['conv_a', 'conv_b', 'flatten...', 'fc']
        >>> tuple(small.get_layer("conv_a").kernel.shape), tuple(small.get_layer("conv_b").kernel.shape)
        ((3, 3, 8, 11), (1, 1, 11, 32))
    """
    entries = plan_entries(model, rank=rank, energy=energy, ratio=ratio, layers=layers, method=method)
    chosen = {id(layer): (plan, svd) for plan, layer, svd in entries if plan.decomposed}
    _check_names(model, chosen)

    def replace(layer, path):
        if id(layer) not in chosen:
            return None
        plan, svd = chosen[id(layer)]
        return factor_layers(layer, plan, svd)

    new_model = replace_layers(model, replace)
    _announce([plan for plan, _, _ in entries], verbose)
    return new_model


def _announce(plans, verbose: bool) -> None:
    """One line per layer (printed if ``verbose``, logged at debug level); one warning listing the layers left alone."""
    for plan in plans:
        line = (
            f"{plan.path}: {plan.method} rank {plan.rank}/{plan.full_rank}, MACs {plan.macs_before:,} -> "
            f"{plan.macs_after:,}, energy {plan.energy:.3f}"
            if plan.decomposed
            else f"{plan.path}: left alone ({plan.reason})"
        )
        if verbose:
            print(line)
        log.debug("decompose: %s", line)
    left = [p for p in plans if not p.decomposed]
    if left:
        warnings.warn("decompose left alone: " + "; ".join(f"'{p.path}' ({p.reason})" for p in left), stacklevel=3)
