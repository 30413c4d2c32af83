"""Pruning benchmark: keras_compress.pruning (Keras 3) against tfmot 0.8 (tf_keras).

Same CNN (188k parameters), same digits data, same starting weights, schedule
(PolynomialDecay 0 -> 80%), optimizer and epochs on both sides. Reports final
per-layer sparsity, accuracy, and the median training step time with the
pruning wrappers relative to the same model without them. Also measures the
issue's done-when figures: accuracy against the dense model, per-layer
sparsity, full-int8 gzip size against float32, and the latency of a model with
50% of its conv filters removed (prune_filters) against the unpruned int8 one.

Run: TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_pruning.py
Needs the `bench` extra (tf_keras, tensorflow-model-optimization) for the
tfmot side, which runs in a subprocess with TF_USE_LEGACY_KERAS=1.
Writes bench/results/pruning.json and pruning.md and prints a table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import edgetpu
from keras_compress.convert import to_tflite
from keras_compress.datasets import load_digits
from keras_compress.pruning import (
    PolynomialDecay,
    UpdatePruningStep,
    prune_filters,
    prune_low_magnitude,
    sparsity_report,
    strip_pruning,
)
from keras_compress.pruning.recipes import conv_layer_names

HERE = Path(__file__).resolve().parent
PRUNED_LAYERS = ["conv1", "conv2", "conv3", "fc", "logits"]


class StepTimer(keras.callbacks.Callback):
    """Intervals between batch starts (callbacks included), from the 2nd epoch on."""

    def __init__(self):
        super().__init__()
        self.times, self._t, self._epoch = [], None, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._t = epoch, None

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        if self._t is not None and self._epoch >= 1:
            self.times.append(now - self._t)
        self._t = now


def build(input_shape):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            L.Conv2D(32, 3, activation="relu", name="conv1"),
            L.MaxPooling2D(name="pool1"),
            L.Conv2D(64, 3, activation="relu", name="conv2"),
            L.MaxPooling2D(name="pool2"),
            L.Conv2D(64, 3, activation="relu", name="conv3"),
            L.Flatten(name="flat"),
            L.Dense(128, activation="relu", name="fc"),
            L.Dense(10, name="logits"),
        ]
    )


def compile_model(model, lr):
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=256), -1) == y))


def tflite_accuracy(data, x, y):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    correct = 0
    for xi, yi in zip(x, y):
        v = xi[None]
        if inp["dtype"] == np.int8:
            s, z = inp["quantization"]
            v = np.clip(np.round(v / s + z), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], v)
        interp.invoke()
        correct += int(np.argmax(interp.get_tensor(out["index"])[0]) == yi)
    return correct / len(y)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-epochs", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (both sides)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sparsity", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=500, help="benchmark invokes")
    ap.add_argument("--no-tfmot", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "pruning.json"))
    return ap.parse_args(argv)


def schedule_for(args, n_train):
    steps = args.epochs * math.ceil(n_train / args.batch_size)
    frequency = max(1, int(0.7 * steps) // 10)
    end_step = (int(0.7 * steps) // frequency) * frequency
    return {"initial_sparsity": 0.0, "final_sparsity": args.sparsity, "begin_step": 0,
            "end_step": end_step, "power": 3, "frequency": frequency}


def run_ours(args, baseline, weights, sched, data):
    """Dense fine-tune (reference step time), then the pruning fine-tune from the same weights."""
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(args.seed + 1)
    dense = compile_model(build(x.shape[1:]), args.lr)
    dense.set_weights(weights)
    t_dense = StepTimer()
    dense.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[t_dense])

    keras.utils.set_random_seed(args.seed + 1)
    pruned = compile_model(prune_low_magnitude(baseline, PolynomialDecay(**sched)), args.lr)
    t_pruned = StepTimer()
    pruned.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
               callbacks=[UpdatePruningStep(), t_pruned])
    stripped = compile_model(strip_pruning(pruned), args.lr)
    ours = {
        "pruned_accuracy": accuracy(stripped, xt, yt),
        "sparsity": {r["layer"]: r["sparsity"] for r in sparsity_report(stripped)},
        "step_ms_without": 1000 * float(np.median(t_dense.times)),
        "step_ms_with": 1000 * float(np.median(t_pruned.times)),
        "step_ms_with_mean": 1000 * float(np.mean(t_pruned.times)),
        "step_ms_without_mean": 1000 * float(np.mean(t_dense.times)),
    }
    ours["overhead"] = ours["step_ms_with"] / ours["step_ms_without"]
    return ours, stripped, accuracy(dense, xt, yt)


def sizes(baseline, stripped, rep, xt, yt):
    """float32 TFLite of the dense baseline against full-int8 of the pruned model (raw, gzip)."""
    blobs = {
        "float32_dense": to_tflite(baseline, quantization="float32", verbose=False),
        "int8_dense": to_tflite(baseline, quantization="int8", representative_data=rep, verbose=False),
        "int8_pruned": to_tflite(stripped, quantization="int8", representative_data=rep, verbose=False),
    }
    return {
        "sizes_bytes": {k: len(v) for k, v in blobs.items()},
        "gzip_bytes": {k: len(gzip.compress(v, 9)) for k, v in blobs.items()},
        "int8_dense_accuracy": tflite_accuracy(blobs["int8_dense"], xt, yt),
        "int8_pruned_accuracy": tflite_accuracy(blobs["int8_pruned"], xt, yt),
        "int8_dense_blob": blobs["int8_dense"],
    }


def filter_pruning(args, baseline, data, rep, i8_dense):
    """50% of every conv layer's filters removed, fine-tuned; int8 latency against the dense int8."""
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(args.seed + 2)
    small = compile_model(prune_filters(baseline, 0.5, layers=conv_layer_names(baseline)), args.lr)
    small.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    i8_small = to_tflite(small, quantization="int8", representative_data=rep, verbose=False)
    lat = {}
    for _ in range(2):  # alternate to spread machine noise over both
        for name, blob in (("int8_dense", i8_dense), ("int8_filter_pruned", i8_small)):
            r = edgetpu.benchmark(blob, runs=args.runs, warmup=20, num_threads=1)
            lat.setdefault(name, []).append(r["median_ms"])
    latency = {k: min(v) for k, v in lat.items()}
    return {"params": int(small.count_params()), "accuracy": accuracy(small, xt, yt),
            "int8_tflite_accuracy": tflite_accuracy(i8_small, xt, yt), "latency_median_ms": latency,
            "speedup": latency["int8_dense"] / latency["int8_filter_pruned"], "latency_runs": lat}


def run_tfmot(args, weights, sched, data):
    """The same fine-tune with tfmot 0.8 on tf_keras, in a subprocess (TF_USE_LEGACY_KERAS=1)."""
    (x, y), (xt, yt) = data
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "data.npz"), x_train=x, y_train=y, x_test=xt, y_test=yt)
        np.savez(os.path.join(tmp, "w.npz"), **{f"w{i}": w for i, w in enumerate(weights)})
        cfg = {"data": os.path.join(tmp, "data.npz"), "baseline_weights": os.path.join(tmp, "w.npz"),
               "input_shape": list(x.shape[1:]), "epochs": args.epochs, "batch_size": args.batch_size,
               "lr": args.lr, "seed": args.seed + 1, "schedule": sched, "pruned_layers": PRUNED_LAYERS}
        Path(tmp, "cfg.json").write_text(json.dumps(cfg))
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(
            [sys.executable, str(HERE / "_tfmot_pruning_run.py"), os.path.join(tmp, "cfg.json"),
             os.path.join(tmp, "out.json")], env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return None
        result = json.loads(Path(tmp, "out.json").read_text())
    result["overhead"] = result["step_ms_with"] / result["step_ms_without"]
    return result


def markdown(result) -> str:
    """The comparison table the README quotes."""
    ours, t = result["ours"], result["tfmot"] or {}
    spars = lambda d: f"{min(d.values()):.1%}-{max(d.values()):.1%}" if d else "-"
    acc = lambda a: f"{a:.2%}" if a is not None else "-"
    dense = result["dense"]["accuracy"]
    rows = [
        ("accuracy: dense / pruned and stripped", f"{acc(dense)} / {acc(ours['pruned_accuracy'])}",
         f"{acc(dense)} / {acc(t.get('pruned_accuracy'))}"),
        ("per-layer sparsity", spars({k: v for k, v in ours["sparsity"].items() if k in PRUNED_LAYERS}),
         spars(t.get("sparsity", {}))),
        ("median training step with wrappers / without", f"{ours['overhead']:.2f}x",
         f"{t['overhead']:.2f}x" if t else "-"),
        ("int8 gzip size / float32 gzip size", f"{result['gzip_ratio_int8_pruned_vs_float32_dense']:.3f}", "-"),
    ]
    lines = ["| | keras-compress (Keras 3) | tfmot 0.8.1 (tf_keras) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def write(result, out):
    """JSON and markdown, each written to a temp file then renamed."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((out, json.dumps(result, indent=2)), (str(Path(out).with_suffix(".md")), markdown(result))):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_digits()
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(args.seed)
    baseline = compile_model(build(x.shape[1:]), args.lr)
    baseline.fit(x, y, batch_size=args.batch_size, epochs=args.baseline_epochs, verbose=0)
    weights = baseline.get_weights()
    sched = schedule_for(args, len(x))

    ours, stripped, dense_ft_acc = run_ours(args, baseline, weights, sched, data)
    rep = x[:200]
    size = sizes(baseline, stripped, rep, xt, yt)
    filt = filter_pruning(args, baseline, data, rep, size.pop("int8_dense_blob"))
    tfmot_result = None
    if not args.no_tfmot:
        tfmot_result = run_tfmot(args, weights, sched, data)
        if tfmot_result is None:
            return 1
    result = {
        "model": {"params": int(baseline.count_params()), "input_shape": list(x.shape[1:]),
                  "train": len(x), "test": len(xt)},
        "settings": {**vars(args), "schedule": sched},
        "dense": {"accuracy": accuracy(baseline, xt, yt), "accuracy_after_same_finetune": dense_ft_acc,
                  "int8_tflite_accuracy": size["int8_dense_accuracy"]},
        "ours": ours,
        "tfmot": tfmot_result,
        "sizes_bytes": size["sizes_bytes"],
        "gzip_bytes": size["gzip_bytes"],
        "gzip_ratio_int8_pruned_vs_float32_dense": size["gzip_bytes"]["int8_pruned"]
        / size["gzip_bytes"]["float32_dense"],
        "int8_pruned_tflite_accuracy": size["int8_pruned_accuracy"],
        "filter_pruned": filt,
        "machine": {"loadavg": Path("/proc/loadavg").read_text().split()[:3]
                    if Path("/proc/loadavg").exists() else None},
        "versions": {"keras": keras.__version__},
    }
    write(result, args.out)
    print_table(result, args)
    return 0


def print_table(result, args):
    ours, t = result["ours"], result["tfmot"] or {}
    print()
    print(f"CNN {result['model']['params']:,} params, digits {result['model']['train']} train / "
          f"{result['model']['test']} test, {args.epochs} fine-tune epochs, PolynomialDecay "
          f"0->{args.sparsity} end_step {result['settings']['schedule']['end_step']}")
    print(f"{'':28}{'keras_compress':>16}{'tfmot 0.8':>12}")
    print(f"{'dense accuracy':28}{result['dense']['accuracy']:>16.4f}")
    print(f"{'pruned accuracy':28}{ours['pruned_accuracy']:>16.4f}{t.get('pruned_accuracy', float('nan')):>12.4f}")
    for name in PRUNED_LAYERS:
        print(f"{'sparsity ' + name:28}{ours['sparsity'].get(name, float('nan')):>16.4f}"
              f"{t.get('sparsity', {}).get(name, float('nan')):>12.4f}")
    for key, label in (("step_ms_without", "step ms, no wrappers"), ("step_ms_with", "step ms, wrappers"),
                       ("overhead", "overhead (with/without)")):
        print(f"{label:28}{ours[key]:>16.3f}{t.get(key, float('nan')):>12.3f}")
    gz, filt = result["gzip_bytes"], result["filter_pruned"]
    print(f"gzip float32 dense {gz['float32_dense']:,} B, int8 pruned {gz['int8_pruned']:,} B: ratio "
          f"{result['gzip_ratio_int8_pruned_vs_float32_dense']:.4f} "
          f"(int8 tflite acc {result['int8_pruned_tflite_accuracy']:.4f})")
    lat = filt["latency_median_ms"]
    print(f"filter-pruned (50% conv filters): acc {filt['accuracy']:.4f}, params {filt['params']:,}, "
          f"int8 median {lat['int8_filter_pruned']:.4f} ms vs dense int8 {lat['int8_dense']:.4f} ms "
          f"(x{filt['speedup']:.2f})")
    print(f"wrote {args.out} and its .md")


if __name__ == "__main__":
    sys.exit(main())
