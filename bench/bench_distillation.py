"""Distillation on load_shapes(), 3 seeds: does the distilled student beat the same student from scratch,
and does a 50%-sparse + QAT distilled student stay within 1 point of the dense distilled one?

Per seed (the data is fixed, load_shapes(seed=0); the seed sets weights and batch order):

1. teacher: ``cnn`` width 1.0 (225k parameters), trained on labels (30 epochs).
2. student from scratch: ``cnn`` width 0.375 (32k parameters, 7x fewer), on labels (20 epochs).
3. student distilled: the same student, *same initial weights*, same epochs,
   distilled from the teacher (keras_compress.distillation.Distiller; T=4,
   alpha=0.5, standardized logits: plain Hinton KD with this teacher's large
   logits made the student worse than scratch in our runs).
4. pruned + QAT: the distilled student, pruned to 50% (PolynomialDecay) while
   still distilling, stripped, then quantization-aware fine-tuned with the
   zeros preserved (still distilling).

Every model is converted to int8 TFLite (PTQ with 200 calibration images; the
QAT model from its own ranges) and evaluated on the 1,000 test images through
the TFLite interpreter. Writes ``bench/results/distillation.json`` and prints a
table of means and spreads (population std, min, max).

Usage:
    .venv/bin/python bench/bench_distillation.py               # 3 seeds, ~5-8 min per seed on 2 cores
    .venv/bin/python bench/bench_distillation.py --seeds 0 --teacher-epochs 2 --epochs 2   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def int8_accuracy(model, x_train, x_test, y_test, qat=False):
    import edgetpu
    from keras_compress.convert import to_tflite
    from keras_compress.errors import ConversionError

    try:
        blob = to_tflite(model, quantization="int8", representative_data=None if qat else x_train[:200], verbose=False)
    except ConversionError as e:  # converter still asking for calibration data for a QAT model
        if not qat or "representative_dataset" not in str(e):
            raise
        blob = to_tflite(model, quantization="int8", representative_data=x_train[:200], verbose=False)
    scores = np.asarray(edgetpu.run(edgetpu.make_interpreter(blob), x_test))
    return float(np.mean(scores.reshape(len(x_test), -1).argmax(-1) == y_test)), len(blob)


def keras_accuracy(model, x, y):
    return float(np.mean(model.predict(x, batch_size=500, verbose=0).argmax(-1) == y))


def run_seed(seed, args, data):
    import keras

    from keras_compress import pruning
    from keras_compress.distillation import LogitsDistillation, distill
    from keras_compress.quantization import quantize_model
    from keras_compress.recipes.builders import build_model

    (x_train, y_train), (x_test, y_test) = data
    shape, classes = x_train.shape[1:], 10
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    out = {"seed": seed}
    t0 = time.perf_counter()

    keras.utils.set_random_seed(seed)
    teacher = build_model("cnn", shape, classes, width=args.teacher_width, name="teacher")
    teacher.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    teacher.fit(x_train, y_train, epochs=args.teacher_epochs, batch_size=64, verbose=0)
    out["teacher"] = {"params": teacher.count_params(), "keras": keras_accuracy(teacher, x_test, y_test)}
    log(f"[seed {seed}] teacher {out['teacher']['keras']:.2%} ({time.perf_counter() - t0:.0f} s)")

    def new_student(name):
        keras.utils.set_random_seed(seed + 1000)  # same initial weights for scratch and distilled
        return build_model("cnn", shape, classes, width=args.student_width, name=name)

    scratch = new_student("scratch")
    scratch.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    keras.utils.set_random_seed(seed + 2000)
    scratch.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    out["scratch"] = {"params": scratch.count_params(), "keras": keras_accuracy(scratch, x_test, y_test)}
    log(f"[seed {seed}] scratch {out['scratch']['keras']:.2%} ({time.perf_counter() - t0:.0f} s)")

    kd = dict(temperature=args.temperature, alpha=args.alpha)
    kd_loss = LogitsDistillation(args.temperature, standardize=args.standardize)

    def distil(student, epochs, lr, callbacks=()):
        from keras_compress.distillation import Distiller

        d = Distiller(teacher, student, kd_loss, student_loss_weight=args.alpha)
        d.compile(keras.optimizers.Adam(lr))
        cbs = list(callbacks)
        d.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0, callbacks=cbs)
        return d.get_student()

    distilled = new_student("distilled")
    keras.utils.set_random_seed(seed + 2000)
    distilled = distil(distilled, args.epochs, 1e-3)
    out["distilled"] = {"params": distilled.count_params(), "keras": keras_accuracy(distilled, x_test, y_test)}
    log(f"[seed {seed}] distilled {out['distilled']['keras']:.2%} ({time.perf_counter() - t0:.0f} s)")

    steps = args.prune_epochs * int(np.ceil(len(x_train) / 64))
    end = max(20, (2 * steps // 3) // 20 * 20)
    wrapped = pruning.prune_low_magnitude(distilled, pruning.PolynomialDecay(0.0, 0.5, 0, end, frequency=20))
    pruned = distil(wrapped, args.prune_epochs, 5e-4, callbacks=[pruning.UpdatePruningStep()])
    qat = quantize_model(pruned, preserve_sparsity=True)
    qat = distil(qat, args.qat_epochs, 1e-4)
    kernels = [w.numpy() for w in qat.weights if w.path.endswith("kernel")]
    sparsity = 1 - sum(np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels)
    out["pruned_qat"] = {"params": pruned.count_params(), "keras": keras_accuracy(qat, x_test, y_test), "sparsity": float(sparsity)}
    log(f"[seed {seed}] pruned+QAT {out['pruned_qat']['keras']:.2%}, sparsity {sparsity:.1%} ({time.perf_counter() - t0:.0f} s)")

    for key, model in (("teacher", teacher), ("scratch", scratch), ("distilled", distilled), ("pruned_qat", qat)):
        acc, size = int8_accuracy(model, x_train, x_test, y_test, qat=(key == "pruned_qat"))
        out[key].update(int8=acc, int8_bytes=size)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    log(f"[seed {seed}] int8: " + ", ".join(f"{k} {out[k]['int8']:.2%}" for k in ("teacher", "scratch", "distilled", "pruned_qat")))
    return out


def stats(values):
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--prune-epochs", type=int, default=6)
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument("--teacher-width", type=float, default=1.0)
    p.add_argument("--student-width", type=float, default=0.375)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "distillation.json"))
    args = p.parse_args(argv)

    from keras_compress.datasets import load_shapes

    data = load_shapes(seed=0)
    runs = [run_seed(s, args, data) for s in args.seeds]
    summary = {}
    for key in ("teacher", "scratch", "distilled", "pruned_qat"):
        summary[key] = {m: stats([r[key][m] for r in runs]) for m in ("keras", "int8")}
        summary[key]["params"] = runs[0][key]["params"]
    gaps = {
        "distilled_minus_scratch_int8": stats([r["distilled"]["int8"] - r["scratch"]["int8"] for r in runs]),
        "distilled_minus_scratch_keras": stats([r["distilled"]["keras"] - r["scratch"]["keras"] for r in runs]),
        "pruned_qat_minus_distilled_int8": stats([r["pruned_qat"]["int8"] - r["distilled"]["int8"] for r in runs]),
    }
    result = {
        "settings": vars(args),
        "runs": runs,
        "summary": summary,
        "gaps": gaps,
        "done_when": {
            "distilled_beats_scratch": gaps["distilled_minus_scratch_int8"]["mean"] > 0,
            "pruned_qat_within_1pt": gaps["pruned_qat_minus_distilled_int8"]["mean"] >= -0.01,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))

    n = len(runs)
    print(f"load_shapes(), {n} seed(s); int8 TFLite test accuracy (1,000 images), mean ± std [min, max]")
    print(f"{'model':<34}{'params':>8}  {'Keras':>22}  {'int8 TFLite':>22}")
    names = {
        "teacher": f"teacher cnn x{args.teacher_width}",
        "scratch": f"student x{args.student_width}, scratch",
        "distilled": f"student x{args.student_width}, distilled",
        "pruned_qat": "distilled, 50% pruned + QAT",
    }
    for key, label in names.items():
        k, q = summary[key]["keras"], summary[key]["int8"]
        fmt = lambda s: f"{s['mean']:.2%} ± {s['std']:.2%}"  # noqa: E731
        print(f"{label:<34}{summary[key]['params']:>8,}  {fmt(k):>22}  {fmt(q):>22}")
    g1, g2 = gaps["distilled_minus_scratch_int8"], gaps["pruned_qat_minus_distilled_int8"]
    print(f"distilled - scratch (int8):       {g1['mean'] * 100:+.2f} pt ± {g1['std'] * 100:.2f} [{g1['min'] * 100:+.2f}, {g1['max'] * 100:+.2f}]")
    print(f"pruned+QAT - distilled (int8):    {g2['mean'] * 100:+.2f} pt ± {g2['std'] * 100:.2f} [{g2['min'] * 100:+.2f}, {g2['max'] * 100:+.2f}]")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
