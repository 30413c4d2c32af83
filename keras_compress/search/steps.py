"""The steps of :func:`keras_compress.search.search`, one function each (see its docstring for the order).

Example:
    >>> from keras_compress.search.steps import verdict_line
    >>> verdict_line({"searched": {"met": {"size": True}, "measured": {"accuracy": 0.98}}, "uniform": None})
    'search: every budget met as measured (size); test accuracy 98.00%'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from keras_compress.search.plan import Plan

__all__ = ["measure_original", "analyse", "allocate_and_measure", "uniform_or_none", "cheaper_than_uniform",
           "final_measurements", "summarize", "write_outputs", "verdict_line"]

_COST_METRICS = ("size", "gzip", "macs", "latency")


def measure_original(model, run, budgets, folder: Path | None, latency_table) -> dict:
    """Convert and measure the original (int8; float32 gzip when a relative gzip budget needs it); set up latency."""
    from keras_compress.decomposition.macs import model_macs
    from keras_compress.search.targets import target_latency
    from keras_compress.summary import gzip_size

    run.say(f"search: measuring the original {model.name!r} ({model.count_params():,} parameters), int8 on {run.target}")
    tflite = run.convert(model)
    measured = run.measure(tflite)
    measured["macs"] = float(model_macs(model))
    if any(b.metric == "gzip" and b.fraction is not None for b in budgets):
        measured["gzip_float32"] = float(gzip_size(run.convert(model, "float32")))
    table = latency_table if latency_table is not None else (folder / "latency_table.json" if folder else None)
    run.latency = target_latency(run.target, table, num_threads=run.num_threads, progress=run.say)
    measured["latency"] = run.latencies([tflite], [model])[0]
    run.say("search: original: " + _costs_text(measured))
    return {"model": model, "tflite": tflite, "measured": measured}


def _costs_text(m: dict) -> str:
    parts = [f"int8 {m['size'] / 1024:.1f} KiB", f"gzip {m['gzip'] / 1024:.1f} KiB", f"{m['macs'] / 1e6:.2f} M MACs"]
    if m.get("latency") is not None:
        parts.append(f"{m['latency']:.3f} ms")
    if m.get("accuracy") is not None:
        parts.append(f"test accuracy {m['accuracy']:.2%}")
    return ", ".join(parts)


def analyse(model, run, original: dict, methods, levels, layers, folder: Path | None, limits: dict,
            recovery_steps: int = 0):
    """The search space, the sensitivity analysis (cached) and the calibrated cost model.

    The latency lookup table measures every single-layer structural setting
    up front only when a latency budget needs it during allocation; otherwise
    only the layers of the models whose latency is predicted get measured.
    """
    from keras_compress.search.cost import CostModel
    from keras_compress.search.sensitivity import analyse as sensitivity
    from keras_compress.search.space import SearchSpace

    space = SearchSpace.of(model, methods, levels, layers)
    if not space.candidates:
        from keras_compress.errors import ConfigError

        raise ConfigError(f"search: no layer of {model.name!r} can be compressed by {', '.join(methods)}")
    run.say(f"search: {len(space.candidates)} layers, methods {', '.join(space.methods())}, {space.size()} settings")
    sens = sensitivity(model, space, run.val[0], run.val[1], cache=folder / "sensitivity.json" if folder else None,
                       recovery=run.fit, recovery_steps=recovery_steps, progress=run.say)
    costs = CostModel(model, latency=run.latency.predict, allocate_latency="latency" in limits)
    if "latency" in limits:
        singles = [Plan({n: {m: s}}) for n, m, s in space.entries() if m in ("filters", "lowrank")]
        run.latency.prepare([model] + [costs.structure(p) for p in singles])
    run.latency.calibrate(model, original["measured"]["latency"])
    costs.calibrate(original["measured"], _reference(run, space, costs))
    original["predicted"] = costs.predict(Plan(), latency=True)
    return space, sens, costs


def _reference(run, space, costs):
    """A second calibration point for the file-size terms: every structural candidate at its middle setting."""
    from keras_compress.summary import gzip_size

    plan = Plan({n: {m: ms[m][len(ms[m]) // 2] for m in ("filters", "lowrank") if m in ms}
                 for n, ms in space.candidates.items()})
    if not plan.layers:
        return None
    tflite = run.convert(costs.structure(plan))
    return plan, {"size": len(tflite), "gzip": gzip_size(tflite)}


def _allocate(kind: str, run, model, space, sens, costs, limits, trace: list, options: dict) -> Plan:
    """The uniform plan, or the best of the candidate plans measured whole on the validation data."""
    from keras_compress.search.allocate import candidate_plans, uniform
    from keras_compress.search.sensitivity import evaluate_plans

    cost = costs.predict
    if kind == "uniform":
        return uniform(space.candidates, sens.plan_damage, cost, limits)
    plans = candidate_plans(space.candidates, sens.plan_damage, cost, limits, trace)
    if len(plans) == 1 or not options["candidate_steps"]:
        return plans[0]
    run.say(f"search: {len(plans)} candidate plans meet the predicted budget; measuring each on the validation "
            f"data after {options['candidate_steps']} recovery steps")
    scores = evaluate_plans(model, plans, run.val[0], run.val[1], recovery=run.fit, steps=options["candidate_steps"],
                            progress=run.say)
    best = max(range(len(plans)), key=lambda i: (scores[i]["accuracy"], -scores[i]["kl"]))
    return plans[best]


def _measure_plan(model, run, plan: Plan, options: dict, original: dict) -> tuple[Any, bytes, dict]:
    from keras_compress.decomposition.macs import model_macs
    from keras_compress.search.apply import apply_plan

    tuned = apply_plan(model, plan, (run.fit, run.test), epochs=options["epochs"], teacher=options["teacher"],
                       seed=options["seed"], progress=run.say)
    tflite = run.convert(tuned, plan=plan)
    measured = run.measure(tflite)
    measured["macs"] = float(model_macs(tuned))
    ref, lat = run.latencies([original["tflite"], tflite], [original["model"], tuned])
    measured["latency"] = lat * original["measured"]["latency"] / ref if run.target == "cpu" else lat
    return tuned, tflite, measured


def allocate_and_measure(model, run, space, sens, costs, limits: dict, kind: str, options: dict, original: dict) -> dict:
    """Allocate (``kind``: ``"searched"`` or ``"uniform"``), fine-tune, convert, measure; tighten and retry on a miss."""
    current, rounds = dict(limits), []
    for attempt in range(1, options["max_rounds"] + 1):
        trace: list = []
        plan = _allocate(kind, run, model, space, sens, costs, current, trace, options)
        predicted = costs.predict(plan, latency=True)
        run.say(f"search: {kind} plan (round {attempt}): {plan.describe()}")
        tuned, tflite, measured = _measure_plan(model, run, plan, options, original)
        missed = {m: measured[m] for m, limit in limits.items() if measured[m] > limit}
        rounds.append({"plan": plan.layers, "limits": dict(current), "predicted": predicted, "measured": measured,
                       "missed": sorted(missed)})
        run.say(f"search: {kind} measured: " + _costs_text(measured)
                + (f"; MISSES {', '.join(sorted(missed))}" if missed else "; meets every cost budget"))
        if not missed:
            break
        for m, value in missed.items():
            current[m] = current[m] * limits[m] / value * 0.98
            run.say(f"search: {kind}: measured {m} {value:,.4g} > budget {limits[m]:,.4g}; "
                    f"re-searching with the {m} limit tightened to {current[m]:,.4g}")
    return {"plan": plan, "model": tuned, "tflite": tflite, "measured": measured, "predicted": predicted,
            "rounds": rounds, "trace": trace, "kind": kind}


def uniform_or_none(model, run, space, sens, costs, limits: dict, options: dict, original: dict) -> dict | None:
    """The uniform baseline fine-tuned and measured, or ``None`` (said) when no uniform setting meets the budget."""
    from keras_compress.errors import ConfigError

    try:
        return allocate_and_measure(model, run, space, sens, costs, limits, "uniform", options, original)
    except ConfigError as e:
        run.say(f"search: no uniform baseline: {e}")
        return None


def cheaper_than_uniform(model, run, space, sens, costs, limits: dict, options: dict, original: dict,
                         searched: dict, uniform: dict | None) -> dict | None:
    """The plan under 85% of the uniform model's measured costs, when the searched one is not 1 point better.

    ``None`` without a uniform model, when the searched one is already 1.0
    point more accurate, or when no plan is predicted to reach those costs.
    """
    from keras_compress.errors import ConfigError

    if uniform is None or searched["measured"]["accuracy"] >= uniform["measured"]["accuracy"] + 0.01:
        return None
    tighter = {m: min(limit, 0.85 * uniform["measured"][m]) for m, limit in limits.items()}
    run.say("search: the searched model is not 1.0 point above the uniform one; searching under 85% of the "
            "uniform's costs (" + ", ".join(f"{m} {v:,.4g}" for m, v in tighter.items()) + ")")
    try:
        return allocate_and_measure(model, run, space, sens, costs, tighter, "cheaper", options, original)
    except ConfigError as e:
        run.say(f"search: no plan reaches 85% of the uniform's costs: {e}")
        return None


def final_measurements(model, run, costs, sens, original: dict, results: list[dict], trace: list, points: int) -> list[dict]:
    """Points along the allocation's path (one-shot, no fine-tuning), then every model's latency interleaved."""
    from keras_compress.decomposition.macs import model_macs
    from keras_compress.search.allocate import trajectory_points
    from keras_compress.search.apply import apply_oneshot

    candidates = []
    for plan in trajectory_points(trace, points)[:-1] if points > 1 else []:
        oneshot = apply_oneshot(model, plan)
        tflite = run.convert(oneshot, plan=plan)
        measured = dict(run.measure(tflite), macs=float(model_macs(oneshot)))
        candidates.append({"kind": "one-shot", "plan": plan, "model": oneshot, "tflite": tflite, "measured": measured,
                           "predicted": costs.predict(plan, latency=False), "predicted_accuracy": sens.predicted_accuracy(plan)})
    every = [original] + results + candidates
    run.say(f"search: measuring the latency of {len(every)} models side by side ({run.target})")
    lats = run.latencies([r["tflite"] for r in every], [r["model"] for r in every])
    for r, lat in zip(every, lats):
        r["measured"]["latency"] = lat
    return candidates


def _budget_rows(budgets, limits, floor, measured) -> dict:
    met = {m: bool(measured[m] <= limit) for m, limit in limits.items()}
    if floor is not None:
        met["accuracy"] = bool(measured["accuracy"] >= floor)
    return met


def _entry(r: dict | None, limits, floor, budgets, original: dict) -> dict | None:
    if r is None:
        return None
    out = {"plan": r["plan"].layers, "measured": r["measured"], "predicted": r["predicted"],
           "met": _budget_rows(budgets, limits, floor, r["measured"])}
    if "rounds" in r:
        out["rounds"] = r["rounds"]
    lat, pred = r["measured"].get("latency"), r["predicted"].get("latency")
    lat0, pred0 = original["measured"].get("latency"), original.get("predicted", {}).get("latency")
    if lat and pred and lat0 and pred0 and np.isfinite(pred) and np.isfinite(pred0):
        # Both sides relative to the original: the prediction to the original's latency it was calibrated
        # on, the measurement to the original's measured in the same interleaved rounds (load drifts between).
        out["latency_model_error"] = (pred / pred0) / (lat / lat0) - 1
        out["latency_predicted_ms"] = pred * lat0 / pred0
    return out


def summarize(run, budgets, limits, floor, original, searched, uniform, candidates, space, sens, cheaper=None) -> dict:
    """``summary.json``'s content: budgets, the original, the searched and uniform plans, candidates, machine."""
    from keras_compress.machine import machine_description

    limits = dict(limits)
    for b in budgets:  # relative latency: against the original measured in the same interleaved rounds
        if b.metric == "latency" and b.fraction is not None:
            limits["latency"] = b.fraction * original["measured"]["latency"]
    summary = {
        "target": run.target,
        "latency_source": "measured (edgetpu.benchmark, XNNPACK, interleaved)" if run.target == "cpu"
        else "estimated (no Edge TPU here: search.latency.edgetpu_latency_ms)",
        "num_threads": run.num_threads,
        "budgets": [{"text": b.text, "meaning": str(b), "metric": b.metric} for b in budgets],
        "limits": limits, "accuracy_floor": floor,
        "original": {"measured": original["measured"], "validation_accuracy": sens.base_accuracy},
        "searched": _entry(searched, limits, floor, budgets, original),
        "uniform": _entry(uniform, limits, floor, budgets, original),
        "cheaper": _entry(cheaper, limits, floor, budgets, original),
        "comparison": _comparison(limits, searched, uniform, cheaper),
        "candidates": [{"plan": c["plan"].layers, "measured": c["measured"], "predicted": c["predicted"],
                        "predicted_accuracy": c["predicted_accuracy"]} for c in candidates],
        "space": {n: dict(ms) for n, ms in space.candidates.items()},
        "machine": machine_description(),
    }
    if run.target == "edgetpu":
        summary["edgetpu"] = _edgetpu_summary(searched["tflite"])
    return summary


def _comparison(limits: dict, searched: dict, uniform: dict | None, cheaper: dict | None) -> dict | None:
    """Searched (and cheaper) against uniform: accuracy gain in points and cost ratios on the budget's metrics."""
    if uniform is None:
        return None

    def versus(r):
        return {"accuracy_gain_points": 100 * (r["measured"]["accuracy"] - uniform["measured"]["accuracy"]),
                "cost_ratio": {m: r["measured"][m] / uniform["measured"][m] for m in limits}}

    out = {"searched": versus(searched)}
    if cheaper is not None:
        out["cheaper"] = versus(cheaper)
    better = out["searched"]["accuracy_gain_points"] >= 1.0 - 1e-9
    matched = cheaper is not None and out["cheaper"]["accuracy_gain_points"] >= -1e-9 and all(
        r <= 0.85 + 1e-9 for r in out["cheaper"]["cost_ratio"].values())
    out["verdict"] = ("searched: >= 1.0 point more accurate than uniform" if better else
                      "cheaper: the uniform's accuracy at <= 85% of its cost" if matched else
                      "neither 1.0 point better nor the uniform's accuracy at 85% of its cost")
    return out


def _edgetpu_summary(tflite: bytes) -> dict:
    import edgetpu

    r = edgetpu.check(tflite)
    return {"fraction_mapped": r.fraction_mapped, "parameter_bytes": r.parameter_bytes,
            "on_chip_cache_bytes": r.on_chip_cache_bytes, "status": r.status,
            "fits_cache": r.parameter_bytes <= r.on_chip_cache_bytes}


def write_outputs(folder: Path, result, original: dict, uniform: dict | None, cheaper: dict | None = None) -> None:
    """``plan.json``, ``model.keras``, ``model.tflite``, ``uniform_plan.json`` / ``cheaper_plan.json``, ``summary.json``, ``report.html``."""
    import os

    from edgetpu import atomic_write_bytes
    from keras_compress.search.report import write_search_report

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "plan.json", result.plan.to_json(model=original["model"].name).encode())
    for name, r in (("uniform", uniform), ("cheaper", cheaper)):
        if r is not None:
            atomic_write_bytes(folder / f"{name}_plan.json", r["plan"].to_json(model=original["model"].name).encode())
    atomic_write_bytes(folder / "model.tflite", result.tflite)
    tmp = folder / f".model.{os.getpid()}.tmp.keras"  # saved whole, then renamed: never a half-written model.keras
    try:
        result.model.save(tmp)
        os.replace(tmp, folder / "model.keras")
    finally:
        tmp.unlink(missing_ok=True)
    text = json.dumps(result.summary, indent=2, default=_json_default)
    atomic_write_bytes(folder / "summary.json", text.encode())
    write_search_report(folder / "report.html", result.summary)


def _json_default(o: Any):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, Plan):
        return o.layers
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def verdict_line(summary: dict) -> str:
    """One line: met or missed, as measured, and the accuracy (and the uniform's)."""
    s = summary["searched"]
    missed = [m for m, ok in s["met"].items() if not ok]
    head = ("search: every budget met as measured" if not missed
            else f"search: MISSED as measured: {', '.join(missed)}") + f" ({', '.join(s['met'])})"
    line = f"{head}; test accuracy {s['measured']['accuracy']:.2%}"
    u = summary.get("uniform")
    if u:
        line += f" (uniform {u['measured']['accuracy']:.2%})"
    if summary.get("comparison"):
        line += f"; {summary['comparison']['verdict']}"
    e = summary.get("edgetpu")
    if e:
        mapped = "100% of the ops" if e["fraction_mapped"] == 1.0 else f"ONLY {e['fraction_mapped']:.0%} of the ops"
        cache = "within" if e["fits_cache"] else "OVER"
        line += f"; edgetpu check: {mapped} mapped, parameters {cache} the on-chip cache (latency estimated)"
    return line
