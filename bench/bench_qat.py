"""QAT benchmark: keras_compress.quantization (Keras 3) against tfmot 0.8 QAT (tf_keras).

Part 1, digits CNN (3 conv+BN+ReLU blocks, GAP, Dense softmax): train float,
then from the same float weights, data, optimizer and epochs:
  - PTQ int8 (to_tflite with 200 calibration images),
  - our QAT -> full-int8 TFLite from the trained ranges (no calibration data),
  - tfmot QAT (subprocess, TF_USE_LEGACY_KERAS=1) -> full-int8 TFLite.
Reports int8 test accuracy, and the median training step time of QAT relative
to float training on the same framework.

Part 2, MobileNetV2 (alpha 0.35, 96x96x3, 10 classes) on the digits
upsampled to 96x96x3: float training, QAT fine-tuning, conversion. Checks that
every op is int8 (no float tensor, no Dequantize) and measures top-1
agreement and max |difference| between the int8 TFLite model and the QAT
model's own outputs.

Run: TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_qat.py [--quick]
Writes bench/results/qat.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
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
from keras_compress.errors import ConversionError  # noqa: E402
from keras_compress.quantization import quantize_model  # noqa: E402

HERE = Path(__file__).resolve().parent
L = keras.layers


def digits_cnn(input_shape, classes=10):
    inp = keras.Input(input_shape)
    x = inp
    for i, f in enumerate((16, 32, 32)):
        x = L.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(x)
        x = L.ReLU(name=f"relu{i + 1}")(x)
        if i < 2:
            x = L.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="digits_cnn")


def convert_qat(model) -> bytes:
    """to_tflite on a QAT model; until the converter accepts it without calibration data, the same route by hand."""
    try:
        return to_tflite(model, quantization="int8", verbose=False)
    except ConversionError as e:
        if "representative_dataset" not in str(e):
            raise
    import tensorflow as tf

    spec = [tf.TensorSpec((1,) + tuple(model.inputs[0].shape[1:]), tf.float32)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.tflite"
        model.export(
            str(out),
            format="litert",
            input_signature=spec,
            verbose=False,
            optimizations=[tf.lite.Optimize.DEFAULT],
            inference_input_type=tf.int8,
            inference_output_type=tf.int8,
        )
        return out.read_bytes()


def tflite_predict(blob, x):
    return np.asarray(edgetpu.run(edgetpu.make_interpreter(blob), x))


def graph_ops(blob):
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(blob, 0)
    names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    types = {v: k for k, v in schema.TensorType.__dict__.items() if not k.startswith("_")}
    g = m.subgraphs[0]
    ops, float_ops = [], []
    for op in g.operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        tt = [types[g.tensors[i].type] for i in list(op.inputs) + list(op.outputs) if i >= 0]
        ops.append(name)
        if name == "DEQUANTIZE" or any(t.startswith("FLOAT") for t in tt):
            float_ops.append(name)
    return ops, float_ops


class StepTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def step_ms(model, x, y, batch_size, steps):
    timer = StepTimer()
    n = batch_size * steps
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, callbacks=[timer])
    return timer.times[3:]


def paired_step_ms(float_model, qat_model, x, y, batch_size, rounds=4, steps=20):
    """Median step times of two models, measured in alternating rounds so that load from
    other processes hits both alike."""
    f, q = [], []
    step_ms(float_model, x, y, batch_size, 5)  # build the train functions
    step_ms(qat_model, x, y, batch_size, 5)
    for _ in range(rounds):
        f += step_ms(float_model, x, y, batch_size, steps)
        q += step_ms(qat_model, x, y, batch_size, steps)
    return float(np.median(f) * 1000), float(np.median(q) * 1000)


def accuracy(probs, y):
    return float(np.mean(np.argmax(probs, -1) == y))


def part_digits(args):
    (x_train, y_train), (x_test, y_test) = load_digits()
    keras.utils.set_random_seed(0)
    model = digits_cnn(x_train.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.float_epochs, verbose=0)
    float_acc = accuracy(model.predict(x_test, verbose=0), y_test)
    weights = model.get_weights()

    ptq = to_tflite(model, quantization="int8", representative_data=x_train[:200], verbose=False)
    ptq_acc = accuracy(tflite_predict(ptq, x_test), y_test)

    # Step times: float and QAT on copies, so the QAT run starts from `weights`.
    timing = digits_cnn(x_train.shape[1:])
    timing.set_weights(weights)
    timing.compile(keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy")
    timing_q = quantize_model(timing)
    timing_q.compile(keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy")
    float_ms, qat_ms = paired_step_ms(timing, timing_q, x_train, y_train, args.batch_size)

    keras.utils.set_random_seed(0)
    qat = quantize_model(model)
    qat.compile(keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    qat.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.qat_epochs, verbose=0)
    fit_s = time.perf_counter() - t0
    qat_probs = qat.predict(x_test, verbose=0)
    blob = convert_qat(qat)
    int8_probs = tflite_predict(blob, x_test)
    _, float_ops = graph_ops(blob)
    ours = {
        "qat_keras_accuracy": accuracy(qat_probs, y_test),
        "int8_accuracy": accuracy(int8_probs, y_test),
        "int8_vs_qat_top1_agreement": float(np.mean(qat_probs.argmax(-1) == int8_probs.argmax(-1))),
        "int8_vs_qat_max_abs_diff": float(np.abs(qat_probs - int8_probs).max()),
        "float_ops_in_int8_graph": float_ops,
        "float_step_ms": float_ms,
        "qat_step_ms": qat_ms,
        "qat_step_time_ratio": qat_ms / float_ms,
        "qat_fit_seconds": fit_s,
    }

    tfmot = None
    if not args.no_tfmot:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data.npz"
            w = np.empty(len(weights), dtype=object)
            w[:] = weights
            np.savez(
                path,
                x_train=x_train,
                y_train=y_train,
                x_test=x_test,
                y_test=y_test,
                weights=w,
                epochs=args.qat_epochs,
                lr=args.lr,
                batch_size=args.batch_size,
            )
            env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
            proc = subprocess.run(
                [sys.executable, str(HERE / "_tfmot_qat_run.py"), str(path)], capture_output=True, text=True, env=env
            )
            if proc.returncode != 0:
                tfmot = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
            else:
                tfmot = json.loads(proc.stdout.strip().splitlines()[-1])
                tfmot["qat_step_time_ratio"] = tfmot["qat_step_ms"] / tfmot["float_step_ms"]
    return {
        "data": "digits (1438 train / 359 test, 32x32x1)",
        "float_epochs": args.float_epochs,
        "qat_epochs": args.qat_epochs,
        "float_accuracy": float_acc,
        "ptq_int8_accuracy": ptq_acc,
        "keras_compress": ours,
        "tfmot": tfmot,
    }


def part_mobilenet(args):
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = load_digits()
    n_train, n_test = min(args.mnv2_train, len(x_train)), min(args.mnv2_test, len(x_test))

    def to_rgb96(x):
        return np.repeat(tf.image.resize(x, (96, 96)).numpy(), 3, axis=-1)

    x_train, x_test = to_rgb96(x_train[:n_train]), to_rgb96(x_test[:n_test])
    y_train, y_test = y_train[:n_train], y_test[:n_test]
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9  # Keras's 0.999 needs far more steps than this short run has
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=args.mnv2_epochs, verbose=0)
    float_acc = accuracy(model.predict(x_test, verbose=0), y_test)
    qat = quantize_model(model)
    qat.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x_train, y_train, batch_size=32, epochs=args.mnv2_qat_epochs, verbose=0)
    qat_probs = qat.predict(x_test, verbose=0)
    blob = convert_qat(qat)
    ops, float_ops = graph_ops(blob)
    int8_probs = tflite_predict(blob, x_test)
    return {
        "data": f"digits upsampled to 96x96x3 ({n_train} train / {n_test} test)",
        "float_epochs": args.mnv2_epochs,
        "qat_epochs": args.mnv2_qat_epochs,
        "float_accuracy": float_acc,
        "qat_keras_accuracy": accuracy(qat_probs, y_test),
        "int8_accuracy": accuracy(int8_probs, y_test),
        "int8_vs_qat_top1_agreement": float(np.mean(qat_probs.argmax(-1) == int8_probs.argmax(-1))),
        "int8_vs_qat_max_abs_diff": float(np.abs(qat_probs - int8_probs).max()),
        "num_ops": len(ops),
        "op_types": sorted(set(ops)),
        "float_ops_in_int8_graph": float_ops,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--float-epochs", type=int, default=20)
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--mnv2-train", type=int, default=1500)
    p.add_argument("--mnv2-test", type=int, default=500)
    p.add_argument("--mnv2-epochs", type=int, default=8)
    p.add_argument("--mnv2-qat-epochs", type=int, default=1)
    p.add_argument("--no-tfmot", action="store_true")
    p.add_argument("--skip-mobilenet", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "qat.json"))
    args = p.parse_args(argv)

    results = {"digits": part_digits(args)}
    d = results["digits"]
    rows = [
        ("float", d["float_accuracy"], None),
        ("PTQ int8 (200 calibration images)", d["ptq_int8_accuracy"], None),
        ("keras_compress QAT int8", d["keras_compress"]["int8_accuracy"], d["keras_compress"]["qat_step_time_ratio"]),
    ]
    if d["tfmot"] and "error" not in d["tfmot"]:
        rows.append(("tfmot QAT int8 (tf_keras)", d["tfmot"]["int8_accuracy"], d["tfmot"]["qat_step_time_ratio"]))
    print(f"\nDigits CNN, float {args.float_epochs} epochs, QAT {args.qat_epochs} epochs from the same float weights")
    print(f"{'variant':40s} {'test acc':>9s} {'QAT step / float step':>22s}")
    for name, acc, ratio in rows:
        print(f"{name:40s} {100 * acc:8.2f}% {('%.2fx' % ratio) if ratio else '':>22s}")
    if d["tfmot"] and "error" in d["tfmot"]:
        print(f"tfmot side failed: {d['tfmot']['error']}")
    k = d["keras_compress"]
    print(
        f"int8 vs QAT model: top-1 agreement {100 * k['int8_vs_qat_top1_agreement']:.2f}%, "
        f"max |prob diff| {k['int8_vs_qat_max_abs_diff']:.4f}, float ops in int8 graph: {k['float_ops_in_int8_graph'] or 'none'}"
    )
    if not args.skip_mobilenet:
        results["mobilenet_v2"] = m = part_mobilenet(args)
        print(f"\nMobileNetV2 alpha=0.35 96x96, {m['data']}")
        print(
            f"float {100 * m['float_accuracy']:.2f}%  QAT {100 * m['qat_keras_accuracy']:.2f}%  int8 {100 * m['int8_accuracy']:.2f}%  "
            f"int8 vs QAT top-1 agreement {100 * m['int8_vs_qat_top1_agreement']:.2f}%  max |prob diff| {m['int8_vs_qat_max_abs_diff']:.4f}"
        )
        print(f"{m['num_ops']} ops {m['op_types']}; float ops / Dequantize: {m['float_ops_in_int8_graph'] or 'none'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
