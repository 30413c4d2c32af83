"""Applying a :class:`~keras_compress.search.plan.Plan` to a Keras model: at once, or with fine-tuning.

- :func:`apply_structure`: ``filters`` then ``lowrank``, no training (a smaller
  architecture carrying the kept / factorized weights);
- :func:`apply_oneshot`: the structure, then ``sparsity`` (magnitude) and
  ``clusters`` (linear centroids, each weight snapped to the nearest) on the
  weights as they are: what the sensitivity analysis measures, and the
  starting point of fine-tuning;
- :func:`apply_plan`: the structure, then fine-tuning through the pipeline's
  own stages, distilled from the original model by default: ``prune`` with
  the plan's per-layer sparsities (or a plain distillation fit when the plan
  has none), then ``cluster`` with its per-layer cluster counts (zeros kept).

Example:
    >>> import keras, numpy as np
    >>> from keras_compress.search import Plan, apply_oneshot
    >>> m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
    ...                       keras.layers.Flatten(name="flat"), keras.layers.Dense(4, name="fc")])
    >>> small = apply_oneshot(m, Plan({"conv": {"filters": 0.5}, "fc": {"sparsity": 0.75}}))
    >>> small.get_layer("conv").filters, float(np.mean(small.get_layer("fc").get_weights()[0] == 0))
    (4, 0.75)
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from keras_compress.search.plan import Plan, factor_pattern

__all__ = ["apply_structure", "apply_oneshot", "apply_weights", "keep_applied", "apply_plan", "four_bit_kernel",
           "four_bit_layers", "fine_tune_schedule", "kernel_layers", "sparsify_kernel",
           "cluster_kernel"]


def kernel_layers(model, name: str) -> list:
    """The layers holding ``name``'s kernel: the layer itself, or its two factors after ``lowrank``."""
    pattern = re.compile(factor_pattern(name))
    return [layer for layer in model.layers if pattern.match(layer.name) and hasattr(layer, "kernel")]


def apply_structure(model, plan: Plan):
    """``model`` with the plan's ``filters`` and ``lowrank`` settings applied (a new model; weights kept, no training)."""
    import warnings

    from keras_compress.decomposition import decompose
    from keras_compress.pruning import prune_filters

    groups: dict[float, list[str]] = {}
    for name, fraction in plan.by_method("filters").items():
        groups.setdefault(fraction, []).append(name)
    for fraction, names in sorted(groups.items()):
        model = prune_filters(model, fraction, layers=names)
    ratios = plan.by_method("lowrank")
    if ratios:
        with warnings.catch_warnings():
            # A layer where no rank saves MACs is left alone; the cost model reads the result as it is.
            warnings.filterwarnings("ignore", message="decompose left alone")
            model = decompose(model, layers={f"^{re.escape(n)}$": float(r) for n, r in ratios.items()})
    return model


def sparsify_kernel(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """``kernel`` with its smallest-magnitude ``sparsity`` fraction set to zero (as the ``prune`` stage's mask)."""
    from keras_compress.pruning.masks import kept_count

    keep = kept_count(kernel.size, sparsity)
    flat = np.abs(kernel).reshape(-1)
    threshold_index = np.argsort(-flat, kind="stable")[:keep]
    mask = np.zeros(flat.shape, bool)
    mask[threshold_index] = True
    return np.where(mask.reshape(kernel.shape), kernel, 0).astype(kernel.dtype)


def cluster_kernel(kernel: np.ndarray, clusters: int, keep_zeros: bool) -> np.ndarray:
    """Every weight snapped to the nearest of ``clusters`` linear centroids (zeros kept if ``keep_zeros``)."""
    from keras_compress.clustering.centroids import initial_centroids

    centroids = np.sort(initial_centroids(kernel, clusters, "linear", preserve_sparsity=keep_zeros))
    flat = kernel.reshape(-1)
    midpoints = (centroids[1:] + centroids[:-1]) / 2.0
    snapped = centroids[np.searchsorted(midpoints, flat)]
    if keep_zeros:
        snapped = np.where(flat == 0, 0, snapped)
    return snapped.reshape(kernel.shape).astype(kernel.dtype)


def four_bit_kernel(kernel: np.ndarray) -> np.ndarray:
    """``kernel`` on the 4-bit grid AI Edge Quantizer exports: symmetric per output channel, ``max|w| / 7``, [-7, 7]."""
    scale = np.maximum(np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0), 1e-12) / 7.0
    return (np.clip(np.round(kernel / scale), -7, 7) * scale).astype(kernel.dtype)


def four_bit_layers(model, plan: Plan) -> list[str]:
    """Names of ``model``'s layers the plan puts at 4 bits (both factors of a factorized layer)."""
    return [layer.name for name in plan.by_method("bits") for layer in kernel_layers(model, name)]


def _set_kernel(layer, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    weights = layer.get_weights()
    index = next(i for i, w in enumerate(layer.weights) if w is layer.kernel or w.path == layer.kernel.path)
    weights[index] = fn(weights[index])
    layer.set_weights(weights)


def apply_weights(model, plan: Plan) -> None:
    """The plan's ``sparsity`` and ``clusters`` on ``model``'s kernels, in place (its structure must be applied)."""
    for name, settings in plan.layers.items():
        for layer in kernel_layers(model, name):
            if "sparsity" in settings:
                _set_kernel(layer, lambda k, s=settings["sparsity"]: sparsify_kernel(k, s))
            if "clusters" in settings:
                _set_kernel(layer, lambda k, n=settings["clusters"], z="sparsity" in settings: cluster_kernel(k, n, z))
            if "bits" in settings:
                _set_kernel(layer, four_bit_kernel)


def keep_applied(plan: Plan):
    """A Keras callback re-applying the plan's sparsity and clusters after every batch (a brief recovery keeps them)."""
    import keras

    weights = plan.only(("sparsity", "clusters", "bits"))

    class KeepApplied(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            apply_weights(self.model.student if hasattr(self.model, "student") else self.model, weights)

    return KeepApplied()


def apply_oneshot(model, plan: Plan):
    """The structure, then the plan's sparsity and clusters on the weights as they are (no training)."""
    import keras

    out = apply_structure(model, plan)
    if out is model:
        out = keras.models.clone_model(model)
        out.set_weights(model.get_weights())
    apply_weights(out, plan)
    return out


def fine_tune_schedule(plan: Plan, epochs: int) -> list[tuple[str, int]]:
    """The fine-tuning phases and their epochs: ``[("prune" | "fit", n), ("cluster", m)]``.

    ``epochs`` in total; with clusters, a quarter of them (at least 1) go to the
    ``cluster`` stage. The same plan methods always get the same schedule, so a
    searched plan and a uniform one are fine-tuned alike.

    Example:
        >>> fine_tune_schedule(Plan({"fc": {"sparsity": 0.9, "clusters": 16}}), 8)
        [('prune', 6), ('cluster', 2)]
        >>> fine_tune_schedule(Plan({"conv1": {"filters": 0.5}}), 4)
        [('fit', 4)]
    """
    methods = plan.methods()
    cluster_epochs = max(1, epochs // 4) if "clusters" in methods and epochs > 1 else 0
    first = ("prune" if "sparsity" in methods else "fit", epochs - cluster_epochs)
    return [first] + ([("cluster", cluster_epochs)] if cluster_epochs else [])


def _context(data, teacher, progress, seed: int):
    from keras_compress.pipeline.artifact import Artifact
    from keras_compress.pipeline.context import Context
    from keras_compress.progress import Progress

    ctx = Context(data=data, folder=None, seed=seed, progress=progress or Progress(enabled=False))
    if teacher is not None:
        ctx.artifacts["teacher"] = Artifact("teacher", teacher)
    return ctx


def apply_plan(model, plan: Plan, data: Any = None, *, epochs: int = 6, teacher: Any = "original",
               batch_size: int = 32, learning_rate: float = 5e-4, seed: int = 0, progress=None):
    """Apply ``plan`` to ``model`` and fine-tune: the search's own recipe, re-applicable to a plan file.

    Args:
        model: the original Keras model (left unchanged).
        plan: the plan (e.g. ``Plan.from_json(open("plan.json").read())``).
        data: ``((x_train, y_train), (x_test, y_test))`` to fine-tune on, or
            ``None`` to apply the plan at once without training (:func:`apply_oneshot`).
        epochs: fine-tuning epochs in total (see :func:`fine_tune_schedule`).
        teacher: ``"original"`` (distil from ``model``, the default), another
            Keras model to distil from, or ``None`` (train on the labels).
        batch_size, learning_rate: the fine-tuning's; clustering uses a fifth of the rate.
        seed: seeds Keras, NumPy and Python before fine-tuning.
        progress: a callable taking one progress line, or ``None`` (silent).

    Returns:
        A plain Keras model (wrappers stripped), uncompiled if no training ran.
    """
    if data is None:
        return apply_oneshot(model, plan)
    from keras_compress.pipeline.artifact import Artifact
    from keras_compress.pipeline.fit import FitSpec, fit
    from keras_compress.pipeline.layermap import LayerMap
    from keras_compress.pipeline.stages import cluster, prune

    teacher_model = model if isinstance(teacher, str) and teacher == "original" else teacher
    ctx = _context(data, teacher_model, progress, seed)
    ctx.seed_random(0)
    start = apply_structure(model, plan)
    if start is model:
        import keras

        start = keras.models.clone_model(model)
        start.set_weights(model.get_weights())
    artifact = Artifact("searched", start)
    who = "teacher" if teacher_model is not None else None
    for phase, n in fine_tune_schedule(plan, epochs):
        if phase == "fit":
            fit(artifact.model, ctx, FitSpec(epochs=n, batch_size=batch_size, learning_rate=learning_rate),
                label="fine-tune", teacher=who)
        elif phase == "prune":
            targets = LayerMap.of({factor_pattern(n_): s for n_, s in plan.by_method("sparsity").items()})
            spec = prune.PruneSpec(target_sparsity=targets, epochs=n, batch_size=batch_size,
                                   learning_rate=learning_rate, teacher=who)
            artifact = prune.run(spec, artifact, ctx)
        else:
            counts = LayerMap.of({factor_pattern(n_): k for n_, k in plan.by_method("clusters").items()})
            spec = cluster.ClusterSpec(number_of_clusters=counts, init="linear", epochs=n, batch_size=batch_size,
                                       learning_rate=learning_rate / 5, teacher=who)
            artifact = cluster.run(spec, artifact, ctx)
    return artifact.model

