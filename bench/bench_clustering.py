"""Clustering benchmark: keras_compress.clustering (Keras 3) against tfmot 0.8 (tf_keras).

The demo's CNN (224k parameters) on digits: one baseline, then from the same
weights, with the same optimizer and epochs on both sides: clustering alone
(16 clusters, LINEAR init as the demo, int8 PTQ), CQAT, and from the same 80%-pruned
weights PCQAT; ours also plain int8, QAT, pruning alone and PQAT, so the
prune / cluster / QAT combinations make one table. Every .tflite (ours and
tfmot's) is measured the same way here: accuracy, gzip -9 size, and the
largest number of distinct int8 values in one output channel of any clustered
kernel (read from the file). Step time of a training step with the clustering
wrappers relative to the same model without them, alternated plain / clustered
for --rounds rounds on each side.

Run: TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_clustering.py
Needs the `bench` extra (tf_keras, tensorflow-model-optimization) for the
tfmot side (a subprocess with TF_USE_LEGACY_KERAS=1; --no-tfmot skips it).
Writes bench/results/clustering.json and clustering.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine, md_table, write_results  # noqa: E402
from bench_pruning import StepTimer  # noqa: E402  (the same step timer as the pruning bench)

from keras_compress.clustering import cluster_weights, strip_clustering  # noqa: E402
from keras_compress.clustering.tflite import tflite_kernel_values  # noqa: E402
from keras_compress.convert import to_tflite  # noqa: E402
from keras_compress.datasets import load_digits  # noqa: E402
from keras_compress.pruning import PolynomialDecay, UpdatePruningStep, prune_low_magnitude, strip_pruning  # noqa: E402
from keras_compress.quantization import quantize_model  # noqa: E402
from keras_compress.recipes.builders import build_cnn  # noqa: E402

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-epochs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs of every stage (both sides)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--clusters", type=int, default=16)
    ap.add_argument("--init", default="LINEAR", choices=["LINEAR", "KMEANS_PLUS_PLUS", "DENSITY_BASED", "RANDOM"])
    ap.add_argument("--sparsity", type=float, default=0.8)
    ap.add_argument("--prune-epochs", type=int, default=8, help="pruning fine-tune (as the demo's pruned variant)")
    ap.add_argument("--prune-lr", type=float, default=1e-3)
    ap.add_argument("--rounds", type=int, default=2, help="alternated plain / clustered step-time rounds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-tfmot", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results"))
    return ap.parse_args(argv)


def fit(model, args, data, epochs=None, callbacks=(), lr=None):
    (x, y), _ = data
    model.compile(keras.optimizers.Adam(lr or args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = StepTimer()
    model.fit(x, y, batch_size=args.batch_size, epochs=epochs or args.epochs, verbose=0,
              callbacks=[*callbacks, timer])
    return 1000 * float(np.median(timer.times)) if timer.times else None


def measure(blob: bytes, data) -> dict:
    import edgetpu

    _, (xt, yt) = data
    scores = np.asarray(edgetpu.run(edgetpu.make_interpreter(blob), xt))
    kernels = [k for k in tflite_kernel_values(blob) if k["op"] != "DEPTHWISE_CONV_2D"]
    return {
        "accuracy": float(np.mean(np.argmax(scores, -1) == yt)),
        "size_bytes": len(blob),
        "gzip_bytes": len(gzip.compress(blob, 9)),
        # (float32 files have no int8 kernels)
        "max_unique_per_channel": max((k["max_unique_per_channel"] for k in kernels), default=None),
        "kernel_zeros": float(np.mean(np.concatenate([(k["values"] == 0).ravel() for k in kernels]))) if kernels else 0.0,
    }


def copy_of(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def ptq(model, data):
    return to_tflite(model, quantization="int8", representative_data=data[0][0][:200], verbose=False)


def qat(model, args, data, **preserve):
    q = quantize_model(model, **preserve)
    fit(q, args, data)
    return to_tflite(q, quantization="int8", verbose=False)


def run_ours(args, baseline, data) -> tuple[dict, dict]:
    """Every combination on our side; returns (the .tflite files, the pruned weights for tfmot's PCQAT)."""
    (x, _), _ = data
    files = {"float32": to_tflite(baseline, quantization="float32", verbose=False), "int8": ptq(baseline, data)}
    files["qat_int8"] = qat(copy_of(baseline), args, data)
    clustered = strip_clustering(_cluster(copy_of(baseline), args, data))
    files["cluster_int8"] = ptq(clustered, data)
    files["cqat_int8"] = qat(clustered, args, data, preserve_clusters=True)
    end = args.prune_epochs * int(np.ceil(len(x) / args.batch_size))
    pruned = prune_low_magnitude(copy_of(baseline), PolynomialDecay(0.0, args.sparsity, 0, int(0.7 * end), frequency=10))
    fit(pruned, args, data, epochs=args.prune_epochs, callbacks=[UpdatePruningStep()], lr=args.prune_lr)
    pruned = strip_pruning(pruned)
    files["pruned_int8"] = ptq(pruned, data)
    files["pqat_int8"] = qat(pruned, args, data, preserve_sparsity=True)
    sparse = strip_clustering(_cluster(pruned, args, data, preserve_sparsity=True))
    files["pcqat_int8"] = qat(sparse, args, data, preserve_sparsity=True, preserve_clusters=True)
    return files, pruned.get_weights()


def _cluster(model, args, data, **kwargs):
    wrapped = cluster_weights(model, args.clusters, args.init, **kwargs)
    fit(wrapped, args, data)
    return wrapped


def step_times(args, baseline, data) -> dict:
    plain, clustered = [], []
    for _ in range(args.rounds):
        plain.append(fit(copy_of(baseline), args, data, epochs=2))
        clustered.append(fit(cluster_weights(copy_of(baseline), args.clusters, args.init), args, data, epochs=2))
    return {"step_ms_plain": plain, "step_ms_clustered": clustered}


def run_tfmot(args, baseline, pruned_weights, data):
    (x, y), (xt, yt) = data
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "data.npz"), x_train=x, y_train=y, x_test=xt, y_test=yt)
        np.savez(os.path.join(tmp, "w.npz"), **{f"w{i}": w for i, w in enumerate(baseline.get_weights())})
        np.savez(os.path.join(tmp, "p.npz"), **{f"w{i}": w for i, w in enumerate(pruned_weights)})
        cfg = {"data": os.path.join(tmp, "data.npz"), "baseline_weights": os.path.join(tmp, "w.npz"),
               "pruned_weights": os.path.join(tmp, "p.npz"), "input_shape": list(x.shape[1:]),
               "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
               "clusters": args.clusters, "init": args.init, "rounds": args.rounds}
        Path(tmp, "cfg.json").write_text(json.dumps(cfg))
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run([sys.executable, str(HERE / "_tfmot_clustering_run.py"), os.path.join(tmp, "cfg.json"), tmp],
                              env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return None, {}
        result = json.loads(Path(tmp, "result.json").read_text())
        files = {p.stem: p.read_bytes() for p in Path(tmp).glob("*.tflite")}
    return result, files


def overhead(times: dict) -> float:
    return float(np.median(times["step_ms_clustered"]) / np.median(times["step_ms_plain"]))


ROWS = ["float32", "int8", "qat_int8", "cluster_int8", "cqat_int8", "pruned_int8", "pqat_int8", "pcqat_int8"]


def markdown(result) -> str:
    ours, theirs, f32 = result["ours"], result["tfmot"], result["ours"]["float32"]
    cell = lambda r: "-" if r is None else (
        f"{r['accuracy']:.2%}, {r['gzip_bytes'] / 1024:.1f} KiB ({f32['gzip_bytes'] / r['gzip_bytes']:.1f}x), "
        f"{r['max_unique_per_channel'] or '-'}")
    rows = [(name, cell(ours.get(name)), cell(theirs.get(name))) for name in ROWS]
    table = md_table(["model", "keras-compress: accuracy, gzip -9 (x smaller than float32), max int8 values/channel",
                      "tfmot 0.8.1 (same)"], rows)
    steps = result["step_times"]
    line = (f"\n\nTraining step with clustering wrappers / without: ours {overhead(steps['ours']):.2f}x "
            f"(median ms plain {steps['ours']['step_ms_plain']}, clustered {steps['ours']['step_ms_clustered']})")
    if steps.get("tfmot"):
        line += (f", tfmot {overhead(steps['tfmot']):.2f}x (plain {steps['tfmot']['step_ms_plain']}, "
                 f"clustered {steps['tfmot']['step_ms_clustered']})")
    return table + line + f". {result['settings']}\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    m = machine()
    data = load_digits()
    baseline = build_cnn(data[0][0].shape[1:], 10, dropout=0.2)
    baseline.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    baseline.fit(*data[0], batch_size=args.batch_size, epochs=args.baseline_epochs, verbose=0)
    ours_steps = step_times(args, baseline, data)
    files, pruned_weights = run_ours(args, baseline, data)
    tfmot_result, tfmot_files = (None, {}) if args.no_tfmot else run_tfmot(args, baseline, pruned_weights, data)
    result = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "ours": {name: measure(blob, data) for name, blob in files.items()},
        "tfmot": {name: measure(blob, data) for name, blob in tfmot_files.items()},
        "step_times": {"ours": ours_steps, "tfmot": (tfmot_result or {}) and {
            k: tfmot_result[k] for k in ("step_ms_plain", "step_ms_clustered")}},
        "tfmot_versions": (tfmot_result or {}).get("versions"),
        "machine": m,
    }
    j, md = write_results("clustering", result, markdown(result), args.out)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
