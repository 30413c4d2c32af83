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
Writes bench/results/pruning.json and prints a table.
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

import keras  # noqa: E402
import numpy as np  # noqa: E402

import edgetpu  # noqa: E402
from keras_compress.convert import to_tflite  # noqa: E402
from keras_compress.datasets import load_digits  # noqa: E402
from keras_compress.pruning import (  # noqa: E402
    PolynomialDecay,
    UpdatePruningStep,
    prune_filters,
    prune_low_magnitude,
    sparsity_report,
    strip_pruning,
)
from keras_compress.pruning.recipes import conv_layer_names  # noqa: E402

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


def main(argv=None) -> int:
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
    args = ap.parse_args(argv)

    (x, y), (xt, yt) = load_digits()
    keras.utils.set_random_seed(args.seed)
    baseline = compile_model(build(x.shape[1:]), args.lr)
    baseline.fit(x, y, batch_size=args.batch_size, epochs=args.baseline_epochs, verbose=0)
    weights = baseline.get_weights()
    dense_acc = accuracy(baseline, xt, yt)

    steps = args.epochs * math.ceil(len(x) / args.batch_size)
    frequency = max(1, int(0.7 * steps) // 10)
    end_step = (int(0.7 * steps) // frequency) * frequency
    sched = dict(initial_sparsity=0.0, final_sparsity=args.sparsity, begin_step=0,
                 end_step=end_step, power=3, frequency=frequency)

    # Ours: dense fine-tune (reference step time) then pruning fine-tune.
    keras.utils.set_random_seed(args.seed + 1)
    dense = compile_model(build(x.shape[1:]), args.lr)
    dense.set_weights(weights)
    t_dense = StepTimer()
    dense.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[t_dense])
    dense_ft_acc = accuracy(dense, xt, yt)

    keras.utils.set_random_seed(args.seed + 1)
    pruned = compile_model(prune_low_magnitude(baseline, PolynomialDecay(**sched)), args.lr)
    t_pruned = StepTimer()
    pruned.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
               callbacks=[UpdatePruningStep(), t_pruned])
    stripped = compile_model(strip_pruning(pruned), args.lr)
    ours_acc = accuracy(stripped, xt, yt)
    rows = sparsity_report(stripped)
    ours_sparsity = {r["layer"]: r["sparsity"] for r in rows}

    # Sizes: float32 TFLite of the dense baseline against full-int8 of the pruned model.
    rep = x[:200]
    f32_dense = to_tflite(baseline, quantization="float32", verbose=False)
    i8_dense = to_tflite(baseline, quantization="int8", representative_data=rep, verbose=False)
    i8_pruned = to_tflite(stripped, quantization="int8", representative_data=rep, verbose=False)
    gz = {k: len(gzip.compress(v, 9)) for k, v in
          (("float32_dense", f32_dense), ("int8_dense", i8_dense), ("int8_pruned", i8_pruned))}
    raw = {k: len(v) for k, v in
           (("float32_dense", f32_dense), ("int8_dense", i8_dense), ("int8_pruned", i8_pruned))}
    i8_pruned_acc = tflite_accuracy(i8_pruned, xt, yt)
    i8_dense_acc = tflite_accuracy(i8_dense, xt, yt)

    # Filter pruning: 50% of every conv layer's filters removed, fine-tuned.
    keras.utils.set_random_seed(args.seed + 2)
    small = compile_model(prune_filters(baseline, 0.5, layers=conv_layer_names(baseline)), args.lr)
    small.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    small_acc = accuracy(small, xt, yt)
    i8_small = to_tflite(small, quantization="int8", representative_data=rep, verbose=False)
    i8_small_acc = tflite_accuracy(i8_small, xt, yt)
    lat = {}
    for _ in range(2):  # alternate to spread machine noise over both
        for name, data in (("int8_dense", i8_dense), ("int8_filter_pruned", i8_small)):
            r = edgetpu.benchmark(data, runs=args.runs, warmup=20, num_threads=1)
            lat.setdefault(name, []).append(r["median_ms"])
    latency = {k: min(v) for k, v in lat.items()}

    ours = {
        "pruned_accuracy": ours_acc,
        "sparsity": {k: v for k, v in ours_sparsity.items()},
        "step_ms_without": 1000 * float(np.median(t_dense.times)),
        "step_ms_with": 1000 * float(np.median(t_pruned.times)),
        "step_ms_with_mean": 1000 * float(np.mean(t_pruned.times)),
        "step_ms_without_mean": 1000 * float(np.mean(t_dense.times)),
    }
    ours["overhead"] = ours["step_ms_with"] / ours["step_ms_without"]

    tfmot_result = None
    if not args.no_tfmot:
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(os.path.join(tmp, "data.npz"), x_train=x, y_train=y, x_test=xt, y_test=yt)
            np.savez(os.path.join(tmp, "w.npz"), **{f"w{i}": w for i, w in enumerate(weights)})
            cfg = dict(data=os.path.join(tmp, "data.npz"), baseline_weights=os.path.join(tmp, "w.npz"),
                       input_shape=list(x.shape[1:]), epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed + 1, schedule=sched, pruned_layers=PRUNED_LAYERS)
            json.dump(cfg, open(os.path.join(tmp, "cfg.json"), "w"))
            env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
            proc = subprocess.run(
                [sys.executable, str(HERE / "_tfmot_pruning_run.py"), os.path.join(tmp, "cfg.json"),
                 os.path.join(tmp, "out.json")], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            tfmot_result = json.load(open(os.path.join(tmp, "out.json")))
            tfmot_result["overhead"] = tfmot_result["step_ms_with"] / tfmot_result["step_ms_without"]

    result = {
        "model": {"params": int(baseline.count_params()), "input_shape": list(x.shape[1:]),
                  "train": len(x), "test": len(xt)},
        "settings": {**vars(args), "schedule": sched},
        "dense": {"accuracy": dense_acc, "accuracy_after_same_finetune": dense_ft_acc,
                  "int8_tflite_accuracy": i8_dense_acc},
        "ours": ours,
        "tfmot": tfmot_result,
        "sizes_bytes": raw,
        "gzip_bytes": gz,
        "gzip_ratio_int8_pruned_vs_float32_dense": gz["int8_pruned"] / gz["float32_dense"],
        "int8_pruned_tflite_accuracy": i8_pruned_acc,
        "filter_pruned": {"params": int(small.count_params()), "accuracy": small_acc,
                          "int8_tflite_accuracy": i8_small_acc, "latency_median_ms": latency,
                          "speedup": latency["int8_dense"] / latency["int8_filter_pruned"],
                          "latency_runs": lat},
        "versions": {"keras": keras.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out + ".tmp"
    with open(tmp_out, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp_out, args.out)

    print()
    print(f"CNN {result['model']['params']:,} params, digits {len(x)} train / {len(xt)} test, "
          f"{args.epochs} fine-tune epochs, PolynomialDecay 0->{args.sparsity} end_step {end_step}")
    print(f"{'':28}{'keras_compress':>16}{'tfmot 0.8':>12}")
    t = tfmot_result or {}
    print(f"{'dense accuracy':28}{dense_acc:>16.4f}")
    print(f"{'pruned accuracy':28}{ours_acc:>16.4f}{t.get('pruned_accuracy', float('nan')):>12.4f}")
    for name in PRUNED_LAYERS:
        print(f"{'sparsity ' + name:28}{ours_sparsity.get(name, float('nan')):>16.4f}"
              f"{t.get('sparsity', {}).get(name, float('nan')):>12.4f}")
    for key, label in (("step_ms_without", "step ms, no wrappers"), ("step_ms_with", "step ms, wrappers"),
                       ("overhead", "overhead (with/without)")):
        print(f"{label:28}{ours[key]:>16.3f}{t.get(key, float('nan')):>12.3f}")
    print(f"gzip float32 dense {gz['float32_dense']:,} B, int8 pruned {gz['int8_pruned']:,} B: "
          f"ratio {result['gzip_ratio_int8_pruned_vs_float32_dense']:.4f} (int8 tflite acc {i8_pruned_acc:.4f})")
    print(f"filter-pruned (50% conv filters): acc {small_acc:.4f}, params {small.count_params():,}, "
          f"int8 median {latency['int8_filter_pruned']:.4f} ms vs dense int8 {latency['int8_dense']:.4f} ms "
          f"(x{result['filter_pruned']['speedup']:.2f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
