"""``search``: compress a model to a budget, per layer, and prove it by measurement.

The steps, each printed as it runs:

1. the original is converted (int8, and float32 for a relative gzip budget)
   and measured on the target: size, gzip, test accuracy, latency;
2. per-layer sensitivity on held-out data (a split of the training data unless
   ``validation_data`` is given; cached, resumable: :mod:`~keras_compress.search.sensitivity`);
3. the cost model is calibrated on the original's measured file and latency
   (:mod:`~keras_compress.search.cost`, :mod:`~keras_compress.search.latency`);
4. allocation: a few plans predicted to meet the budget (the greedy one over
   every method, the greedy one over each method alone, the uniform one:
   :func:`~keras_compress.search.allocate.candidate_plans`) are each applied,
   briefly recovered and measured on the validation data; the best is chosen.
   The uniform baseline (:func:`~keras_compress.search.allocate.uniform`) is
   kept apart for the comparison;
5. each plan is applied and fine-tuned (distilled from the original by
   default, :func:`~keras_compress.search.apply.apply_plan`), converted to
   int8 and measured; a plan whose measured cost misses a budget is re-searched
   with that limit tightened by the miss (at most ``max_rounds`` times) and the
   miss is said, never hidden;
6. if the searched model is not at least 1.0 point more accurate than the
   uniform one, the search also answers the other question a budget poses:
   the plan under 85% of the uniform model's measured costs (the budget's
   metrics), fine-tuned and measured the same way (``summary["cheaper"]``,
   ``cheaper_plan.json``): the uniform model's accuracy at a lower cost, or not;
7. points along the allocation's path are converted without fine-tuning and
   measured too: with the fine-tuned ones, they form the Pareto front.

Latency on ``target="cpu"`` is measured through ``edgetpu.benchmark``
(XNNPACK, ``num_threads``), every model of a comparison in the same
interleaved rounds. On ``target="edgetpu"`` no device is here: latency comes
from :func:`~keras_compress.search.latency.edgetpu_latency_ms` (an estimate,
labelled so), the parameters must fit the on-chip cache and the result must be
predicted 100% mapped by ``edgetpu.check``.

Example:
    >>> from keras_compress.search import search                  # doctest: +SKIP
    >>> result = search(model, load_digits(), budget=["size=25%"], out_dir="search_out")  # doctest: +SKIP
    >>> result.summary["searched"]["measured"]["size"]             # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from keras_compress.errors import ConfigError
from keras_compress.search.apply import four_bit_layers
from keras_compress.search.budget import Budget, parse_budgets
from keras_compress.search.plan import Plan
from keras_compress.search.space import DEFAULT_METHODS

__all__ = ["search", "SearchResult", "TARGETS"]

#: Where the searched model runs.
TARGETS = ("cpu", "edgetpu")


@dataclass
class SearchResult:
    """What :func:`search` returns (and writes to ``out_dir``)."""

    plan: Plan
    model: Any
    tflite: bytes
    summary: dict
    uniform_plan: Plan | None = None
    out_dir: Path | None = None
    candidates: list = field(default_factory=list)


def _split(data, validation_data, seed: int):
    """``(fit, validation, test)`` splits; validation is 20% of the training data unless given."""
    (x, y), test = data
    y = np.asarray(y).reshape(-1)
    if validation_data is not None:
        vx, vy = validation_data
        return (x, y), (vx, np.asarray(vy).reshape(-1)), test
    if len(x) < 10:
        raise ConfigError(f"search: {len(x)} training samples; need at least 10 to hold out validation data")
    idx = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, len(x) // 5)
    return (x[idx[n_val:]], y[idx[n_val:]]), (x[idx[:n_val]], y[idx[:n_val]]), test


@dataclass
class _Run:
    """What the steps of one search share."""

    target: str
    fit: tuple
    val: tuple
    test: tuple
    calibration: np.ndarray
    num_threads: int
    say: Callable[[str], None]
    latency: Any = None  # the target's latency model (search.latency)

    def convert(self, model, mode: str = "int8", plan: Plan | None = None) -> bytes:
        """The model as full int8 (``mode``), or int8 with the plan's 4-bit layers (AI Edge Quantizer)."""
        from keras_compress.convert import to_tflite

        four = four_bit_layers(model, plan) if plan is not None and mode == "int8" else []
        if not four:
            return to_tflite(model, quantization=mode, representative_data=self.calibration, verbose=False)
        int8 = [layer.name for layer in model.layers if layer.weights and layer.name not in four
                and type(layer).__name__ in ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D")]
        return to_tflite(model, quantization="int4_int8", representative_data=self.calibration, verbose=False,
                         int8_layers=int8)

    def measure(self, tflite: bytes) -> dict:
        """Size, gzip and test accuracy (latency comes from :meth:`latencies`, interleaved)."""
        import edgetpu
        from keras_compress.summary import gzip_size

        scores = edgetpu.run(edgetpu.make_interpreter(tflite, num_threads=self.num_threads), self.test[0])
        scores = scores[0] if isinstance(scores, list) else scores
        acc = float(np.mean(scores.reshape(len(scores), -1).argmax(-1) == np.asarray(self.test[1]).reshape(-1)))
        return {"size": len(tflite), "gzip": gzip_size(tflite), "accuracy": acc}

    def latencies(self, blobs: Sequence[bytes], models: Sequence[Any]) -> list[float]:
        """Median ms of each model: measured interleaved on the CPU, estimated for the Edge TPU."""
        if self.target == "edgetpu":
            return [self.latency.predict(m) for m in models]
        return self.latency.measure_models(blobs)


def _limits(budgets: Sequence[Budget], original: dict, target: str) -> tuple[dict, float | None]:
    """``({metric: limit} for the costs, accuracy floor or None)``; the Edge TPU adds its cache as a size limit."""
    from edgetpu.check_result import ON_CHIP_CACHE_BYTES

    limits = {b.metric: b.limit(original) for b in budgets if not b.is_floor}
    floor = next((b.limit(original) for b in budgets if b.is_floor), None)
    if target == "edgetpu":
        limits["size"] = min(limits.get("size", np.inf), float(ON_CHIP_CACHE_BYTES))
    return limits, floor


def _check_args(target: str, methods: Sequence[str], fine_tune_epochs: int, max_rounds: int, budgets) -> None:
    if target not in TARGETS:
        raise ConfigError(f"search target {target!r}: expected one of {', '.join(TARGETS)}")
    if isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, int) or fine_tune_epochs < 1:
        raise ConfigError(f"fine_tune_epochs: expected an integer >= 1; got {fine_tune_epochs!r}")
    if not methods:
        raise ConfigError("search methods: give at least one of filters, sparsity, lowrank, clusters")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ConfigError(f"max_rounds: expected an integer >= 1; got {max_rounds!r}")
    if "bits" in methods and target == "edgetpu":
        raise ConfigError("search method 'bits': 4-bit weights do not run on the Edge TPU (int8 only)")
    if "bits" in methods and any(b.metric == "latency" for b in budgets):
        raise ConfigError("search method 'bits' with a latency budget: the latency table measures int8 layers; "
                          "4-bit weights run other kernels (slower than int8 on x86 XNNPACK), so leave 'bits' out")


def search(model, data, *, budget, target: str = "cpu", methods: Sequence[str] = DEFAULT_METHODS,
           validation_data=None, fine_tune_epochs: int = 6, teacher: Any = "original",
           out_dir: str | os.PathLike | None = None, num_threads: int = 1, compare_uniform: bool = True,
           levels: dict | None = None, layers: Sequence[str] | None = None, calibration_samples: int = 200,
           pareto_points: int = 4, max_rounds: int = 3, latency_table: str | os.PathLike | None = None,
           cache_dir: str | os.PathLike | None = None, recovery_steps: int = 20, candidate_steps: int = 100,
           seed: int = 0, progress: Callable[[str], None] | None = None) -> SearchResult:
    """Search per-layer settings of ``methods`` that meet ``budget``, fine-tune, convert and measure.

    Args:
        model: a trained Keras classifier (left unchanged).
        data: ``((x_train, y_train), (x_test, y_test))``; the result is reported on the test split.
        budget: ``"size=25%"`` or a list of such (:mod:`~keras_compress.search.budget`).
        target: ``"cpu"`` (XNNPACK, ``num_threads``) or ``"edgetpu"``.
        methods: some of ``filters``, ``sparsity``, ``lowrank``, ``clusters``, and ``bits`` (4-bit
            weights per layer, opt-in: CPU runtimes with int4 kernels only; not with a latency budget).
        validation_data: ``(x, y)`` for the sensitivity analysis (default: 20% of the training data, then not trained on).
        fine_tune_epochs: epochs of fine-tuning per plan (the searched and the uniform one alike).
        teacher: ``"original"`` (distil from ``model``), a Keras model, or ``None`` (labels only).
        out_dir: where the plan, models, ``summary.json``, ``report.html`` and the caches go (``None``: nothing written).
        num_threads: CPU threads of every latency measurement.
        compare_uniform: also fine-tune and measure the uniform baseline.
        levels: ``{method: settings}`` to try instead of the defaults.
        layers: only these layers are compressed (default: every candidate).
        calibration_samples: int8 calibration images (from the training data).
        pareto_points: plans along the allocation's path measured without fine-tuning.
        max_rounds: searches per plan when a measured cost misses its budget.
        latency_table: the CPU latency lookup table's file (default ``cache_dir/latency_table.json``).
        cache_dir: where ``sensitivity.json`` and the latency table live (default ``out_dir``); searches
            of one model under other budgets can share it.
        recovery_steps: distillation steps each sensitivity entry recovers for before it is evaluated
            (0: right after applying it; see :mod:`~keras_compress.search.sensitivity`).
        candidate_steps: distillation steps each candidate plan recovers for before the candidates
            are compared on the validation data (0: take the greedy plan as it is).
        seed: seeds the validation split and the fine-tuning.
        progress: one line per step (default: stderr).
    """
    from keras_compress.progress import Progress
    from keras_compress.search import steps

    budgets = parse_budgets(budget)
    _check_args(target, methods, fine_tune_epochs, max_rounds, budgets)
    say = progress or Progress()
    folder = Path(out_dir) if out_dir is not None else None
    cache = Path(cache_dir) if cache_dir is not None else folder
    fit_data, val, test = _split(data, validation_data, seed)
    run = _Run(target, fit_data, val, test, fit_data[0][:calibration_samples], num_threads, say)
    original = steps.measure_original(model, run, budgets, cache, latency_table)
    limits, floor = _limits(budgets, original["measured"], target)
    space, sens, costs = steps.analyse(model, run, original, methods, levels, layers, cache, limits, recovery_steps)
    options = dict(epochs=fine_tune_epochs, teacher=teacher, seed=seed, max_rounds=max_rounds,
                   candidate_steps=candidate_steps)
    searched = steps.allocate_and_measure(model, run, space, sens, costs, limits, "searched", options, original)
    uniform = steps.uniform_or_none(model, run, space, sens, costs, limits, options, original) if compare_uniform else None
    cheaper = steps.cheaper_than_uniform(model, run, space, sens, costs, limits, options, original, searched, uniform)
    results = [r for r in (searched, uniform, cheaper) if r]
    points = steps.final_measurements(model, run, costs, sens, original, results, searched["trace"], pareto_points)
    summary = steps.summarize(run, budgets, limits, floor, original, searched, uniform, points, space, sens, cheaper)
    result = SearchResult(searched["plan"], searched["model"], searched["tflite"], summary,
                          uniform["plan"] if uniform else None, folder, points)
    if folder is not None:
        steps.write_outputs(folder, result, original, uniform, cheaper)
    say(steps.verdict_line(summary))
    return result
