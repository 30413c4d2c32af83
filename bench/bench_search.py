"""The budget search on the demo CNN under the three budgets of issue 17, against the uniform allocation.

1. train the demo CNN as ``keras-compress demo`` trains its baseline (seed 0, 12 epochs);
2. for each budget (int8 size <= 25% of the original int8 file; latency <= 50% of the
   original int8 latency, 1 thread; gzip <= 1/12 of the float32 file's gzip), run
   ``keras_compress.search.search`` with every method (filters, sparsity, low-rank,
   clusters), the same fine-tuning for the searched and the uniform plans (6 epochs,
   distilled from the original); one sensitivity cache and latency table shared;
3. the same size budget with ``target="edgetpu"``;
4. write bench/results/search.{json,md}: per budget the original, uniform and searched
   rows (accuracy on the 359 test images, int8 size, gzip, MACs, latency measured side by
   side), whether each budget is met as measured, the latency model's error on the
   searched models, and the issue's comparison (>= 1.0 point better than uniform, or its
   accuracy at >= 15% lower cost).

Run (one command; on a quiet machine for the latency figures):
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_search.py
Smoke test (minutes; figures meaningless):
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_search.py --quick --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine, md_table, write_results  # noqa: E402

BUDGETS = {"size": "size=25%", "latency": "latency=0.5x", "gzip": "gzip=1/12"}
METHODS = ("filters", "sparsity", "lowrank", "clusters")


def train_baseline(data, epochs: int):
    import keras

    from keras_compress.demo import build_demo_cnn
    from keras_compress.pipeline.fit import compile_classifier

    (x, y), _ = data
    keras.utils.set_random_seed(0)
    model = build_demo_cnn()
    compile_classifier(model, 1e-3).fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def row(name: str, m: dict) -> list:
    lat = m.get("latency")
    return [name, f"{m['accuracy']:.2%}", f"{m['size'] / 1024:.1f} KiB", f"{m['gzip'] / 1024:.1f} KiB",
            f"{m['macs'] / 1e6:.2f} M", f"{lat:.3f} ms" if lat else "-"]


def markdown(results: dict, m: dict) -> str:
    out = ["# Budget search on the demo CNN (keras_compress.search)", "",
           "Every figure measured on the converted int8 .tflite (accuracy on the 359 test images; latency "
           "XNNPACK 1 thread, the models of one budget timed side by side in 15 interleaved rounds, median of the per-round medians). "
           f"Fine-tuning {results['epochs']} epochs distilled from the original, the same for both plans. "
           "Command: `TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_search.py`.", ""]
    header = ["model", "accuracy", "int8 size", "gzip", "MACs", "latency"]
    for name, r in results["budgets"].items():
        s = r["summary"]
        out += [f"## {r['budget']} ({s['budgets'][0]['meaning']}; limit {s['limits'][name]:,.4g})", ""]
        rows = [row("original", s["original"]["measured"])]
        rows += [row("uniform", s["uniform"]["measured"])] if s.get("uniform") else []
        rows += [row("searched", s["searched"]["measured"])]
        rows += [row("searched, <= 85% of uniform's cost", s["cheaper"]["measured"])] if s.get("cheaper") else []
        out += [md_table(header, rows), ""]
        c = s.get("comparison") or {}
        for kind in ("searched", "cheaper"):
            if s.get(kind):
                met = "meets" if all(s[kind]["met"].values()) else "MISSES"
                v = c.get(kind, {})
                ratio = v.get("cost_ratio", {}).get(name, float("nan"))
                err = s[kind].get("latency_model_error")
                out.append(f"- {kind}: {met} the budget as measured; {v.get('accuracy_gain_points', 0):+.2f} points and "
                           f"{ratio:.2f}x the {name} of uniform; latency model error "
                           + (f"{err:+.1%}" if err is not None else "-") + f"; plan `{json.dumps(s[kind]['plan'])}`")
        out += [f"- uniform plan: `{json.dumps(s['uniform']['plan']) if s.get('uniform') else '-'}`",
                f"- verdict: **{c.get('verdict', '-')}**", ""]
    if results.get("edgetpu"):
        e = results["edgetpu"]["summary"]
        out += ["## --target edgetpu, size=25%", "",
                f"edgetpu check: {e['edgetpu']['fraction_mapped']:.0%} of the ops predicted mapped; parameters "
                f"{e['edgetpu']['parameter_bytes']:,} B of the {e['edgetpu']['on_chip_cache_bytes']:,} B on-chip cache; "
                f"accuracy {e['searched']['measured']['accuracy']:.2%}; latency {e['latency_source']}.", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    p.add_argument("--work", default="/tmp/bench_search", help="search output folders and the shared caches")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--quick", action="store_true", help="2 baseline epochs, 1 fine-tuning epoch, size budget only")
    p.add_argument("--only", default=None, help="comma-separated budgets to run (size, latency, gzip, edgetpu)")
    args = p.parse_args(argv)

    from keras_compress.datasets import load_digits
    from keras_compress.search import search

    m = machine()
    data = load_digits()
    model = train_baseline(data, 2 if args.quick else 12)
    epochs = 1 if args.quick else args.epochs
    work = Path(args.work)
    chosen = args.only.split(",") if args.only else (["size"] if args.quick else [*BUDGETS, "edgetpu"])
    results: dict = {"epochs": epochs, "budgets": {}}
    for name in chosen:
        t0 = time.perf_counter()
        budget, target = (BUDGETS["size"], "edgetpu") if name == "edgetpu" else (BUDGETS[name], "cpu")
        r = search(model, data, budget=[budget], target=target, methods=METHODS, fine_tune_epochs=epochs,
                   out_dir=work / name, cache_dir=work / "cache", num_threads=1)
        entry = {"budget": budget, "target": target, "summary": r.summary, "seconds": time.perf_counter() - t0}
        if name == "edgetpu":
            results["edgetpu"] = entry
        else:
            results["budgets"][name] = entry
        print(f"{name}: {(r.summary.get('comparison') or {}).get('verdict')} ({entry['seconds']:.0f} s)", flush=True)
    m["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results("search", {"machine": m, **results}, markdown(results, m), Path(args.out) if args.out else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
