"""Latency of MobileNetV2 224 (float32, int8, 80%-sparse int8, filter-pruned int8) on the CPU, side by side.

What it measures, all in one process and interleaved (every configuration is
timed once per round, the order rotating each round, so load drift hits all
of them alike):

* median invoke latency through our harness (``edgetpu.benchmark`` on an
  interpreter from ``edgetpu.make_interpreter``, XNNPACK on) at 1 and 2 threads;
* XNNPACK on vs off (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``) for float32 and int8;
* our harness's overhead against a bare loop over ``Interpreter.invoke()`` on the
  same interpreter (1 thread), the two alternating round by round.

The models: ``keras.applications.MobileNetV2(weights=None)`` (no download, and
latency does not depend on the weights' values); int8 calibrated on random
inputs in [-1, 1]; 80%-sparse = 80% of every Conv2D / DepthwiseConv2D / Dense
kernel zeroed by magnitude (``keras_compress.pruning.magnitude_mask``);
filter-pruned = ``keras_compress.pruning.prune_filters(model, 0.5)`` (half the
filters of every conv whose channels can be removed; convs feeding a residual
Add and the classifier are kept).

Each reported latency is the median over rounds of the per-round median of
``--runs`` invokes; the spread over rounds is reported as well.

Run: TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_latency.py  [--quick]
Writes bench/results/latency.json and bench/results/latency.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import interleave, machine, md_table, median, write_results  # noqa: E402

VARIANTS = ("float32", "int8", "int8_sparse80", "int8_filter_pruned50")


def build_models(calibration: int, seed: int = 0) -> tuple[dict[str, bytes], dict]:
    """The four MobileNetV2 variants as .tflite bytes, and facts about them."""
    import keras

    from keras_compress.convert import to_tflite
    from keras_compress.pruning import magnitude_mask, prune_filters

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    calib = rng.uniform(-1, 1, size=(calibration, 224, 224, 3)).astype(np.float32)
    facts: dict = {}
    t = time.perf_counter()
    base = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    facts["params"] = {"dense": int(base.count_params())}
    blobs = {
        "float32": to_tflite(base, quantization="float32", verbose=False),
        "int8": to_tflite(base, quantization="int8", representative_data=calib, verbose=False),
    }

    sparse = keras.models.clone_model(base)
    sparse.set_weights(base.get_weights())
    zeroed = total = 0
    for layer in sparse.layers:
        kernel = getattr(layer, "depthwise_kernel", None) if isinstance(layer, keras.layers.DepthwiseConv2D) else getattr(layer, "kernel", None)
        if kernel is None:
            continue
        mask, _ = magnitude_mask(kernel, 0.8)
        kernel.assign(kernel * mask)
        k = np.asarray(kernel)
        zeroed += int(np.sum(k == 0))
        total += k.size
    facts["sparse80_kernel_sparsity"] = zeroed / total
    blobs["int8_sparse80"] = to_tflite(sparse, quantization="int8", representative_data=calib, verbose=False)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the per-layer "skipped" list (residual Adds) is long; counts go to the JSON
        pruned = prune_filters(base, 0.5)
    facts["params"]["filter_pruned50"] = int(pruned.count_params())
    blobs["int8_filter_pruned50"] = to_tflite(pruned, quantization="int8", representative_data=calib, verbose=False)
    facts["sizes"] = {k: len(v) for k, v in blobs.items()}
    facts["build_seconds"] = round(time.perf_counter() - t, 1)
    return blobs, facts


def _bare_median(interp, runs: int, warmup: int) -> float:
    """The barest timing loop there is: perf_counter_ns around each invoke(), median in ms."""
    invoke, clock = interp.invoke, time.perf_counter_ns
    for _ in range(warmup):
        invoke()
    times = np.empty(runs)
    for i in range(runs):
        t0 = clock()
        invoke()
        times[i] = clock() - t0
    return float(np.median(times)) / 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=50, help="timed invokes per configuration per round (default 50)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--warmup", type=int, default=5, help="untimed invokes before each timed block (default 5)")
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--calibration", type=int, default=8, help="random calibration images for int8 (default 8)")
    p.add_argument("--no-xnnpack-off", action="store_true", help="skip the XNNPACK-off configurations")
    p.add_argument("--quick", action="store_true", help="smoke test: --runs 5 --rounds 2 --warmup 2")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    p.add_argument("--save-models", default=None, help="also write the .tflite files to this folder")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.rounds, args.warmup = 5, 2, 2
    threads = [int(t) for t in args.threads.split(",")]

    import edgetpu

    m = machine()
    print(f"[latency] building MobileNetV2 variants ({args.calibration} calibration images) ...", file=sys.stderr, flush=True)
    blobs, facts = build_models(args.calibration)
    if args.save_models:
        Path(args.save_models).mkdir(parents=True, exist_ok=True)
        for k, b in blobs.items():
            (Path(args.save_models) / f"mobilenetv2_{k}.tflite").write_bytes(b)

    configs: dict[str, dict] = {}
    for v in VARIANTS:
        for t in threads:
            configs[f"{v}/{t}thr/xnnpack"] = {"variant": v, "threads": t, "xnnpack": True}
    if not args.no_xnnpack_off:
        for v in ("float32", "int8"):
            for t in threads:
                configs[f"{v}/{t}thr/no-xnnpack"] = {"variant": v, "threads": t, "xnnpack": False}
    tasks = {}
    interps = {}
    for name, c in configs.items():
        interp = interps[name] = edgetpu.make_interpreter(blobs[c["variant"]], num_threads=c["threads"], use_xnnpack=c["xnnpack"])
        tasks[name] = (lambda it: lambda: edgetpu.benchmark(it, runs=args.runs, warmup=args.warmup)["median_ms"])(interp)
    # Harness vs bare invoke loop on the *same* interpreter (two interpreter instances of one
    # model differ by several percent on their own: memory placement), interleaved with the rest.
    for v in ("float32", "int8"):
        same = interps[f"{v}/1thr/xnnpack"]
        tasks[f"{v}/1thr/bare-loop"] = (lambda it: lambda: _bare_median(it, args.runs, args.warmup))(same)
        configs[f"{v}/1thr/bare-loop"] = {"variant": v, "threads": 1, "xnnpack": True, "bare": True}

    print(f"[latency] {len(tasks)} configurations x {args.rounds} rounds x {args.runs} invokes", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    per_round = interleave(tasks, args.rounds)
    seconds = time.perf_counter() - t0

    results = []
    for name, c in configs.items():
        xs = per_round[name]
        results.append({**c, "config": name, "median_ms": median(xs), "min_round_ms": min(xs), "max_round_ms": max(xs),
                        "rounds_ms": xs})
    by = {r["config"]: r for r in results}

    def ratio(a, b):
        return by[a]["median_ms"] / by[b]["median_ms"] if a in by and b in by else None

    overhead = {v: 100.0 * (ratio(f"{v}/1thr/xnnpack", f"{v}/1thr/bare-loop") - 1.0) for v in ("float32", "int8")}
    # the fastest round of each side: least sensitive to other processes on a shared machine
    overhead_min = {v: 100.0 * (by[f"{v}/1thr/xnnpack"]["min_round_ms"] / by[f"{v}/1thr/bare-loop"]["min_round_ms"] - 1.0)
                    for v in ("float32", "int8")}
    speed_1 = ratio("float32/1thr/xnnpack", "int8/1thr/xnnpack")
    done = {
        "harness_overhead_pct": overhead,
        "harness_overhead_ok": all(o <= 3.0 for o in overhead.values()),
        "harness_overhead_fastest_round_pct": overhead_min,
        "int8_speedup_vs_float32_1thr": speed_1,
        "int8_speedup_ok": speed_1 is not None and speed_1 >= 1.8,
    }
    payload = {
        "bench": "latency",
        "model": "MobileNetV2 224x224x3 (keras.applications, weights=None), batch 1",
        "settings": {"runs": args.runs, "rounds": args.rounds, "warmup": args.warmup, "threads": threads,
                     "calibration_images": args.calibration, "quick": args.quick, "seconds": round(seconds, 1)},
        "machine": m,
        "models": facts,
        "results": results,
        "done_when": done,
    }

    def judge(ok: bool) -> str:
        return "not judged on a --quick run" if args.quick else ("met" if ok else "NOT met")

    rows = []
    for v in VARIANTS:
        row = [v, f"{facts['sizes'][v] / 2**20:.2f} MiB"]
        for t in threads:
            r = by[f"{v}/{t}thr/xnnpack"]
            row.append(f"{r['median_ms']:.2f} ({r['min_round_ms']:.2f}-{r['max_round_ms']:.2f})")
        for t in threads:
            key = f"{v}/{t}thr/no-xnnpack"
            row.append(f"{by[key]['median_ms']:.2f}" if key in by else "-")
        f32 = by[f"float32/{threads[0]}thr/xnnpack"]["median_ms"]
        row.append(f"{f32 / by[f'{v}/{threads[0]}thr/xnnpack']['median_ms']:.2f}x")
        rows.append(row)
    header = ["MobileNetV2 224", "size"] + [f"{t} thr, ms (round range)" for t in threads] + \
             [f"{t} thr, XNNPACK off, ms" for t in threads] + [f"speed-up vs float32 ({threads[0]} thr)"]
    md = [f"### Latency: MobileNetV2 224, CPU, median of {args.rounds} interleaved rounds x {args.runs} invokes",
          "", md_table(header, rows), "",
          "Harness overhead vs bare `Interpreter.invoke()` loop (1 thread, median): "
          + ", ".join(f"{v} {o:+.2f}% ({by[f'{v}/1thr/xnnpack']['median_ms']:.3f} vs {by[f'{v}/1thr/bare-loop']['median_ms']:.3f} ms)"
                      for v, o in overhead.items())
          + f" (done-when <= 3%: {judge(done['harness_overhead_ok'])}).",
          "Same, fastest round of each side: " + ", ".join(f"{v} {o:+.2f}%" for v, o in overhead_min.items()) + ".",
          f"int8 vs float32 at 1 thread: {speed_1:.2f}x (done-when >= 1.8x: {judge(done['int8_speedup_ok'])}).",
          f"Filter-pruned: {facts['params']['filter_pruned50']:,} of {facts['params']['dense']:,} parameters; "
          f"80%-sparse: {facts['sparse80_kernel_sparsity']:.1%} of conv/dense kernel weights zero."]
    if args.quick:
        md.insert(1, "\n**Quick smoke run (--quick): too few invokes for real figures.**")
    j, mdp = write_results("latency", payload, "\n".join(md), Path(args.out) if args.out else None)
    print(Path(mdp).read_text())
    print(f"wrote {j} and {mdp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
