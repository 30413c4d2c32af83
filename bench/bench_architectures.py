"""QAT int8 vs PTQ int8 on the architecture families of issue 18, after a short training on built-in data.

For each family of ``tests/architectures.py`` (keras.applications at the
smallest input each accepts, weights=None, 10 classes; a Conv1D + GRU text
classifier; a small ViT block):

1. float training from scratch on digits (``keras_compress.datasets.load_digits``
   at the family's input size, grey repeated to RGB; for the text classifier
   each image row of 8 binarized pixels becomes one token),
2. PTQ: ``to_tflite(int8, representative_data=200 training images, target="edgetpu")``,
3. QAT: ``quantize_model`` + a short fine-tune from the float weights,
   ``to_tflite(int8)`` with no calibration data,
4. int8 test accuracy of both (the TFLite models run through ``edgetpu.run``),
   and ``edgetpu.check``'s fraction of ops mapped to the Edge TPU.

A step that fails is recorded with its error (e.g. PTQ of LayerNormalization
models, whose NEG the converter keeps in float).

Run: TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_architectures.py [--families A B] [--quick]
Writes bench/results/architectures.json and .md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine, md_table, write_results  # noqa: E402
from architectures import FAMILIES, pixel_scale  # noqa: E402

import edgetpu  # noqa: E402
from keras_compress.convert import to_tflite  # noqa: E402
from keras_compress.datasets import load_digits  # noqa: E402
from keras_compress.errors import CompressError  # noqa: E402
from keras_compress.quantization import quantize_model  # noqa: E402


def tokens_from_digits(x):
    """(N, 32, 32, 1) digits -> (N, 16) token ids: each of 16 rows (8 pixels, binarized) is one token in 1..256."""
    small = x[:, ::2, ::4, 0] > 0.5  # 16 rows x 8 columns
    return (small.astype(np.int32) * (1 << np.arange(8))).sum(axis=-1).astype(np.int32) + 1


def data_for(model, n_train, n_test):
    shape = tuple(model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        (x, y), (xt, yt) = load_digits(32)
        x, xt = tokens_from_digits(x), tokens_from_digits(xt)
    else:
        (x, y), (xt, yt) = load_digits(shape[0])
        scale = pixel_scale(model)
        x, xt = np.repeat(x, shape[-1], -1) * scale, np.repeat(xt, shape[-1], -1) * scale
    return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])


def compile_(model, lr):
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


def tflite_accuracy(blob, x, y):
    out = np.asarray(edgetpu.run(edgetpu.make_interpreter(blob), x))
    return float(np.mean(out.argmax(-1) == y))


def attempt(fn):
    """(value, None) or (None, "ErrorType: message") for a step that may fail."""
    try:
        return fn(), None
    except (CompressError, ValueError, RuntimeError, TypeError) as e:
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"


def ptq(model, family, x, xt, yt):
    if not family.ptq_runs:
        return {"error": "not run: TF's int8 calibrator crashes on a GRU's WHILE loop (see EDGETPU.md)"}
    t = time.perf_counter()
    blob, err = attempt(lambda: to_tflite(model, quantization="int8", representative_data=x[:200], target="edgetpu", verbose=False))
    if err:
        return {"error": err}
    check = edgetpu.check(blob)
    return {
        "accuracy": tflite_accuracy(blob, xt, yt),
        "fraction_mapped": check.fraction_mapped,
        "convert_seconds": time.perf_counter() - t,
    }


def qat(model, x, y, xt, yt, args):
    t = time.perf_counter()
    q, err = attempt(lambda: quantize_model(model))
    if err:
        return {"error": err}
    compile_(q, args.qat_lr)
    q.fit(x, y, batch_size=args.batch_size, epochs=args.qat_epochs, verbose=0)
    keras_acc = float(np.mean(q.predict(xt, verbose=0).argmax(-1) == yt))
    blob, err = attempt(lambda: to_tflite(q, quantization="int8", verbose=False))
    if err:
        return {"error": err, "qat_keras_accuracy": keras_acc}
    return {
        "qat_keras_accuracy": keras_acc,
        "accuracy": tflite_accuracy(blob, xt, yt),
        "fraction_mapped": edgetpu.check(blob).fraction_mapped,
        "seconds": time.perf_counter() - t,
    }


def run_family(name, args):
    family = FAMILIES[name]
    keras.utils.set_random_seed(0)
    model = family.build()
    (x, y), (xt, yt) = data_for(model, args.train, args.test)
    compile_(model, args.lr)
    t = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    float_acc = float(np.mean(model.predict(xt, verbose=0).argmax(-1) == yt))
    row = {"float_accuracy": float_acc, "float_train_seconds": time.perf_counter() - t, "params": model.count_params()}
    row["ptq"] = ptq(model, family, x, xt, yt)
    row["qat"] = qat(model, x, y, xt, yt, args)
    return row


def pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def markdown(results, args):
    rows = []
    for name, r in results.items():
        p, q = r["ptq"], r["qat"]
        rows.append([
            name, pct(r["float_accuracy"]),
            p.get("error") or pct(p.get("accuracy")), q.get("error") or pct(q.get("accuracy")),
            pct(p.get("fraction_mapped")), pct(q.get("fraction_mapped")),
        ])  # fmt: skip
    header = ["family", "float", "PTQ int8", "QAT int8", "Edge TPU mapped (PTQ)", "Edge TPU mapped (QAT)"]
    return (
        f"# QAT int8 vs PTQ int8 per architecture\n\nDigits ({args.train} train / {args.test} test), float "
        f"{args.epochs} epochs from scratch (Adam {args.lr}), QAT {args.qat_epochs} epoch(s) (Adam {args.qat_lr}) "
        "from the float weights; int8 accuracy of the TFLite models.\n\n" + md_table(header, rows)
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--train", type=int, default=1438)
    p.add_argument("--test", type=int, default=359)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="200 train / 100 test images, 1 float epoch")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.test, args.epochs = 200, 100, 1
    payload = {"machine": machine(), "args": vars(args), "results": {}}
    for name in args.families:
        t = time.perf_counter()
        payload["results"][name] = row = run_family(name, args)
        print(f"{name}: float {pct(row['float_accuracy'])}, PTQ {row['ptq'].get('error') or pct(row['ptq']['accuracy'])}, "
              f"QAT {row['qat'].get('error') or pct(row['qat']['accuracy'])} ({time.perf_counter() - t:.0f} s)", flush=True)
    j, md = write_results("architectures", payload, markdown(payload["results"], args), Path(args.out) if args.out else None)
    print(f"wrote {j} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
