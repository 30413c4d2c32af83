"""`decomposition_report`: per layer, the rank, parameters, MACs and energy of a decomposition."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from keras_compress.decomposition.factor_layers import factor_names
from keras_compress.decomposition.macs import FACTORIZABLE, layer_macs, model_macs
from keras_compress.decomposition.plan import call_counts, refusal, walk
from keras_compress.decomposition.svd import KernelSVD, compose

__all__ = ["decomposition_report"]


def _method(layer, a, b) -> str:
    if isinstance(layer, keras.layers.Dense):
        return "svd"
    return "channel" if all(k == 1 for k in b.kernel_size) else "spatial"


def _factored_row(path, layer, a, b) -> dict:
    method = _method(layer, a, b)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    rank = int(a.kernel.shape[-1])
    svd = KernelSVD(kernel, method)
    now = compose(keras.ops.convert_to_numpy(a.kernel), keras.ops.convert_to_numpy(b.kernel), method)
    return {
        "layer": path, "status": "decomposed", "method": method, "rank": rank, "full_rank": svd.full_rank,
        "params_before": layer.count_params(), "params_after": a.count_params() + b.count_params(),
        "macs_before": layer_macs(layer), "macs_after": layer_macs(a) + layer_macs(b),
        "energy": svd.energy(rank),
        # how far the factors' product now is from the original kernel (grows with fine-tuning)
        "kernel_rel_error": float(np.linalg.norm(now - kernel) / max(np.linalg.norm(kernel), 1e-30)),
        "reason": None,
    }


def _kept_row(path, layer, found: bool, calls: int) -> dict:
    reason = refusal(layer, calls)
    if not found:
        reason = "not found in the decomposed model"
    macs = layer_macs(layer) if reason is None or found else None
    return {
        "layer": path, "status": "kept" if found else "missing", "method": None, "rank": None,
        "full_rank": None, "params_before": layer.count_params(),
        "params_after": layer.count_params() if found else None, "macs_before": macs,
        "macs_after": macs if found else None, "energy": 1.0 if found else None, "kernel_rel_error": None,
        "reason": reason or "not selected, or no factorization saved MACs at the requested rank",
    }


def _format(rows: list[dict], totals: dict) -> list[str]:
    def num(v):
        return "-" if v is None else f"{v:,}"

    lines = [f"{'layer':28s} {'method':8s} {'rank':>9s} {'params':>21s} {'MACs':>25s} {'energy':>7s}"]
    for r in rows:
        rank = f"{r['rank']}/{r['full_rank']}" if r["rank"] else "-"
        energy = "-" if r["energy"] is None else f"{r['energy']:.3f}"
        lines.append(
            f"{r['layer'][:28]:28s} {(r['method'] or r['status'])[:8]:8s} {rank:>9s} "
            f"{num(r['params_before']) + ' -> ' + num(r['params_after']):>21s} "
            f"{num(r['macs_before']) + ' -> ' + num(r['macs_after']):>25s} {energy:>7s}"
        )
    lines.append(
        f"model: params {totals['params_before']:,} -> {totals['params_after']:,}, MACs "
        f"{totals['macs_before']:,} -> {totals['macs_after']:,} "
        f"({totals['macs_after'] / max(totals['macs_before'], 1):.1%})"
    )
    return lines


def decomposition_report(model, decomposed, print_fn: Callable[[str], None] | None = print) -> list[dict]:
    """Compares ``decomposed`` with the ``model`` it came from, layer by layer.

    Every Dense / Conv layer of ``model`` gets one row: ``status``
    (``"decomposed"``, ``"kept"`` or ``"missing"``), ``method``, ``rank`` and
    ``full_rank``, ``params_before`` / ``params_after``, ``macs_before`` /
    ``macs_after``, ``energy`` (fraction of the squared singular values the
    rank keeps, from ``model``'s kernel),
    ``kernel_rel_error`` (relative distance of the factors' product, as they are
    now, from the original kernel: it grows with fine-tuning) and ``reason``
    (why a layer was kept, when known). Layers are matched by name
    (``conv3`` -> ``conv3_a`` + ``conv3_b``), so the report also works after
    fine-tuning.

    Args:
        model: the original model.
        decomposed: what :func:`~keras_compress.decomposition.decompose` returned
            (possibly fine-tuned since).
        print_fn: called with each line of a table and a model total; ``None`` prints nothing.

    Returns:
        One dict per Dense / Conv layer of ``model``.

    Example:
        >>> import keras
        >>> from keras_compress.decomposition import decompose
        >>> m = keras.Sequential([keras.Input((32,)), keras.layers.Dense(32, name="fc1"),
        ...                       keras.layers.Dense(4, name="fc2")])
        >>> rows = decomposition_report(m, decompose(m, rank=8, layers="fc1"), print_fn=None)
        >>> [(r["layer"], r["status"], r["rank"], r["params_before"], r["params_after"]) for r in rows]
        [('fc1', 'decomposed', 8, 1056, 544), ('fc2', 'kept', None, 132, 132)]
    """
    new_layers = {path: layer for path, layer, _ in walk(decomposed)}
    rows, counts = [], {}
    for path, layer, parent in walk(model):
        if not isinstance(layer, FACTORIZABLE):
            continue
        prefix = path[: len(path) - len(layer.name)]
        a, b = (new_layers.get(prefix + n) for n in factor_names(layer.name))
        if a is not None and b is not None and path not in new_layers:
            rows.append(_factored_row(path, layer, a, b))
        else:
            calls = counts.setdefault(id(parent), call_counts(parent)).get(layer.name, 1)
            rows.append(_kept_row(path, layer, path in new_layers, calls))
    totals = {
        "params_before": model.count_params(), "params_after": decomposed.count_params(),
        "macs_before": model_macs(model), "macs_after": model_macs(decomposed),
    }
    if print_fn is not None:
        for line in _format(rows, totals):
            print_fn(line)
    return rows
