"""Validation of the latency cost model (keras_compress.search.latency) against whole-model measurements.

The demo CNN (``keras_compress.demo.build_demo_cnn``, untrained: latency does not
depend on the weights' values) and compressed variants of it: filter pruning
(``prune_filters`` at different per-layer fractions), low-rank factorization
(``decompose`` at different ratios and layers) and both. Each variant is
converted to full int8 (int8 input and output, ``to_tflite``).

1. The lookup table measures every distinct layer shape of all variants once
   (one-layer int8 models, round-robin over the entries, ``--table-rounds`` rounds).
2. Every variant's whole .tflite is measured, all variants interleaved
   (``measure_tflite``: ``--rounds`` rounds of ``--runs`` invokes, the order rotating).
3. The table is calibrated on the baseline only (``overhead = measured - sum``);
   every variant is then predicted and compared with its measurement.

Reported per variant: predicted and measured ms, error (predicted / measured - 1),
the uncalibrated error, and the Edge TPU *estimate* (no Edge TPU here; a documented
cost model from MACs and parameter bytes, not a measurement). Target: |error| <= 15%
on every variant. 1 thread, XNNPACK on.

Run: TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_search_latency.py  [--quick]
Writes bench/results/search_latency.json and bench/results/search_latency.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import loadavg, machine, md_table, write_results  # noqa: E402

TARGET = 0.15
# name -> (prune_filters {fraction: layers}, decompose {ratio: layers}); filters first, then low-rank.
VARIANTS = {
    "baseline": ({}, {}),
    "filters conv1 50%": ({0.5: ["conv1"]}, {}),
    "filters conv2+conv3 50%": ({0.5: ["conv2", "conv3"]}, {}),
    "filters conv3 75%, fc 50%": ({0.75: ["conv3"], 0.5: ["fc"]}, {}),
    "filters all 25%": ({0.25: ["conv1", "conv2", "conv3", "fc"]}, {}),
    "lowrank fc 0.25": ({}, {0.25: ["fc"]}),
    "lowrank conv2+conv3 0.3": ({}, {0.3: ["conv2", "conv3"]}),
    "filters conv1+conv2 50% + lowrank conv3+fc 0.3": ({0.5: ["conv1", "conv2"]}, {0.3: ["conv3", "fc"]}),
    "filters conv2 75% + lowrank fc 0.1": ({0.75: ["conv2"]}, {0.1: ["fc"]}),
}
# Coral's published "Desktop CPU + USB Accelerator (USB 3.0)" ms (coral.ai/docs/edgetpu/benchmarks) with
# approximate MACs / int8 parameter bytes from the papers: a check of the Edge TPU estimate's defaults.
CORAL = {
    "MobileNet v1 224": (0.569e9, 4.2e6, 2.4),
    "MobileNet v2 224": (0.300e9, 3.5e6, 2.6),
    "Inception v1 224": (1.5e9, 6.6e6, 3.4),
    "ResNet-50 V1 299": (7.3e9, 25.6e6, 49.0),
    "Inception v4 299": (12.3e9, 42.7e6, 85.0),
}


def build_variants() -> dict:
    """name -> compressed Keras model."""
    from keras_compress.decomposition import decompose
    from keras_compress.demo import build_demo_cnn
    from keras_compress.pruning import prune_filters

    import keras

    keras.utils.set_random_seed(0)
    base = build_demo_cnn()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (filters, lowrank) in VARIANTS.items():
            m = base
            for fraction, layers in filters.items():
                m = prune_filters(m, fraction, layers=layers)
            for ratio, layers in lowrank.items():
                m = decompose(m, ratio=ratio, layers=layers)
            out[name] = m
    return out


def edgetpu_estimate(model) -> dict:
    from keras_compress.decomposition import model_macs
    from keras_compress.search.latency import edgetpu_latency_ms

    return edgetpu_latency_ms(model_macs(model), param_bytes=model.count_params())  # int8: one byte per parameter


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=9, help="interleaved whole-model rounds (default 9)")
    p.add_argument("--runs", type=int, default=100, help="invokes per model per round (default 100)")
    p.add_argument("--table-rounds", type=int, default=7, help="interleaved rounds per table entry (default 7)")
    p.add_argument("--table-runs", type=int, default=100, help="invokes per entry per round (default 100)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table", default=None, help="latency table file (default: a fresh temp file)")
    p.add_argument("--quick", action="store_true", help="smoke test: few rounds and runs")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.runs, args.table_rounds, args.table_runs = 2, 10, 2, 10

    from keras_compress.convert import to_tflite
    from keras_compress.search.latency import LatencyTable, measure_tflite

    m = machine()
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    models = build_variants()
    calib = np.random.default_rng(0).normal(size=(16, 32, 32, 1)).astype(np.float32)
    blobs = {n: to_tflite(v, quantization="int8", representative_data=calib, verbose=False) for n, v in models.items()}
    with tempfile.TemporaryDirectory() as tmp:
        table = LatencyTable(args.table or Path(tmp) / "latency.json", num_threads=args.threads,
                             rounds=args.table_rounds, runs=args.table_runs, warmup=10)
        t1 = time.perf_counter()
        measured_entries = table.measure(list(models.values()), progress=say)
        table_s = time.perf_counter() - t1
        load_after_table = loadavg()
        whole = measure_tflite(blobs, num_threads=args.threads, rounds=args.rounds, runs=args.runs, warmup=10,
                               progress=say)
        uncal = {n: table.predict(v).total_ms for n, v in models.items()}
        offset_cal = table.calibrate(models["baseline"], whole["baseline"]["median_ms"], mode="offset")
        offset = {n: table.predict(v).total_ms for n, v in models.items()}
        calibration = table.calibrate(models["baseline"], whole["baseline"]["median_ms"], mode="scale")
        rows = []
        for n, v in models.items():
            pred, meas = table.predict(v), whole[n]["median_ms"]
            rows.append({
                "variant": n, "params": int(v.count_params()), "tflite_bytes": len(blobs[n]),
                "predicted_ms": pred.total_ms, "measured_ms": meas, "measured_spread_ms": whole[n]["spread_ms"],
                "error": pred.total_ms / meas - 1, "uncalibrated_error": uncal[n] / meas - 1,
                "offset_calibrated_error": offset[n] / meas - 1,
                "layers_ms": {x.name: x.ms for x in pred.layers if x.ms is not None},
                "edgetpu_estimate_ms": edgetpu_estimate(v)["ms"],
            })
    max_err = max(abs(r["error"]) for r in rows[1:])
    payload = {
        "machine": m, "settings": vars(args), "target_abs_error": TARGET, "max_abs_error_excluding_baseline": max_err,
        "meets_target": max_err <= TARGET, "calibration": calibration, "offset_calibration": offset_cal,
        "max_abs_error_offset": max(abs(r["offset_calibrated_error"]) for r in rows[1:]),
        "max_abs_error_uncalibrated": max(abs(r["uncalibrated_error"]) for r in rows), "floor_ms": table.floor_ms,
        "table_key": table.key, "table_entries_measured": len(measured_entries), "table_seconds": round(table_s, 1),
        "loadavg_after_table": load_after_table, "rows": rows, "seconds": round(time.perf_counter() - t0, 1),
        "edgetpu_note": "Edge TPU figures are ESTIMATES from MACs and parameter bytes (no Edge TPU on this machine)",
        "edgetpu_vs_coral_published": {k: {"published_ms": ms, "estimate_ms": _coral(mac, pb)} for k, (mac, pb, ms) in CORAL.items()},
    }
    write_results("search_latency", payload, _markdown(payload), Path(args.out) if args.out else None)
    print(_markdown(payload))
    return 0


def _coral(macs, param_bytes) -> float:
    from keras_compress.search.latency import edgetpu_latency_ms

    return round(edgetpu_latency_ms(macs, param_bytes)["ms"], 2)


def _markdown(p: dict) -> str:
    rows = [[r["variant"], r["params"], f"{r['predicted_ms']:.4f}", f"{r['measured_ms']:.4f}",
             f"{r['measured_spread_ms']:.4f}", f"{100 * r['error']:+.1f}%", f"{100 * r['offset_calibrated_error']:+.1f}%",
             f"{100 * r['uncalibrated_error']:+.1f}%",
             f"{r['edgetpu_estimate_ms']:.2f}"] for r in p["rows"]]
    coral = [[k, v["published_ms"], v["estimate_ms"], f"{100 * (v['estimate_ms'] / v['published_ms'] - 1):+.0f}%"]
             for k, v in p["edgetpu_vs_coral_published"].items()]
    verdict = "meets" if p["meets_target"] else "MISSES"
    return "\n".join([
        "# Latency cost model against whole-model measurements (demo CNN, full int8, "
        f"{p['settings']['threads']} thread, XNNPACK)",
        "",
        f"Max |error| over the compressed variants: **{100 * p['max_abs_error_excluding_baseline']:.1f}%** "
        f"({verdict} the {100 * p['target_abs_error']:.0f}% target) with the default calibration "
        f"(mode=\"scale\", fitted on the baseline only: scale {p['calibration']['scale']:.3f}, overhead = floor "
        f"entry {p['floor_ms']:.4f} ms; the baseline's error is 0 by construction). For comparison, "
        f"mode=\"offset\" (overhead {p['offset_calibration']['overhead_ms']:.4f} ms, scale 1): "
        f"{100 * p['max_abs_error_offset']:.1f}%; uncalibrated: {100 * p['max_abs_error_uncalibrated']:.1f}%. Table: "
        f"{p['table_entries_measured']} entries measured in {p['table_seconds']} s, "
        f"{p['settings']['table_rounds']} interleaved rounds x {p['settings']['table_runs']} invokes; whole models: "
        f"{p['settings']['rounds']} interleaved rounds x {p['settings']['runs']} invokes (spread = max - min of the "
        f"per-round medians). Load after the table: {p['loadavg_after_table']}.",
        "",
        md_table(["variant", "params", "predicted ms", "measured ms", "spread ms", "error (scale)",
                  "error (offset)", "error (uncalibrated)",
                  "Edge TPU est. ms"], rows),
        "",
        f"{p['edgetpu_note']}. Its defaults against Coral's published USB Accelerator table "
        "(approximate MACs and parameter counts):",
        "",
        md_table(["model", "published ms", "estimate ms", "difference"], coral),
    ])


if __name__ == "__main__":
    sys.exit(main())
