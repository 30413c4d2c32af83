"""Conversion time: `keras_compress.convert.to_tflite` against a bare `tf.lite.TFLiteConverter` call.

Same Keras model, same mode and (for int8) the same calibration arrays on both
sides. The bare side is ``TFLiteConverter.from_keras_model(model)`` with the
same optimizations / supported ops / I/O types set by hand (TF 2.21 converts
Keras 3 models this way again; where it fails, the SavedModel route
``model.export(dir)`` + ``from_saved_model`` is timed instead and the JSON says
so). ``to_tflite`` goes through Keras's LiteRT export (SavedModel then
``from_saved_model``) and pins a static batch of 1, so the two files differ a
little in size; both are recorded. Repetitions alternate the two sides.

Models: the demo CNN (32x32x1, ~225k parameters) and MobileNetV2 224
(weights=None). Modes: float32 and int8.

Run: TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_convert.py [--quick]
Writes bench/results/convert.json and bench/results/convert.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import machine, md_table, median, write_results  # noqa: E402


def _models(names):
    import keras

    from keras_compress.demo import build_demo_cnn

    keras.utils.set_random_seed(0)
    out = {}
    if "demo_cnn" in names:
        out["demo_cnn"] = build_demo_cnn()
    if "mobilenetv2" in names:
        out["mobilenetv2"] = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    return out


def _bare(model, mode: str, calib: np.ndarray) -> tuple[bytes, str]:
    import tensorflow as tf

    def configure(c):
        if mode == "int8":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            c.inference_input_type = tf.int8
            c.inference_output_type = tf.int8
            c.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
        return c

    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):  # from_keras_model prints its traced signature
            return configure(tf.lite.TFLiteConverter.from_keras_model(model)).convert(), "from_keras_model"
    except Exception:  # noqa: BLE001 - broken in some TF releases for Keras 3 (tensorflow#63867)
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(sink):
            model.export(d, format="tf_saved_model", verbose=False)
            return configure(tf.lite.TFLiteConverter.from_saved_model(d)).convert(), "export+from_saved_model"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3, help="repetitions per side (default 3)")
    p.add_argument("--models", default="demo_cnn,mobilenetv2")
    p.add_argument("--modes", default="float32,int8")
    p.add_argument("--calibration", type=int, default=16, help="calibration samples for int8 (default 16)")
    p.add_argument("--quick", action="store_true", help="smoke test: demo CNN only, 1 repetition")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.models = 1, "demo_cnn"

    from keras_compress.convert import to_tflite

    m = machine()
    models = _models(args.models.split(","))
    rng = np.random.default_rng(0)
    results = []
    for mname, model in models.items():
        shape = tuple(model.inputs[0].shape[1:])
        calib = rng.uniform(0 if mname == "demo_cnn" else -1, 1, size=(args.calibration, *shape)).astype(np.float32)
        for mode in args.modes.split(","):
            times = {"to_tflite": [], "bare": []}
            sizes, route = {}, None
            for rep in range(args.reps):
                order = ("to_tflite", "bare") if rep % 2 == 0 else ("bare", "to_tflite")
                for side in order:
                    print(f"[convert] {mname} {mode} {side} rep {rep + 1}/{args.reps}", file=sys.stderr, flush=True)
                    t0 = time.perf_counter()
                    if side == "to_tflite":
                        blob = to_tflite(model, quantization=mode, representative_data=calib if mode == "int8" else None,
                                         num_calibration_samples=args.calibration, verbose=False)
                    else:
                        blob, route = _bare(model, mode, calib)
                    times[side].append(time.perf_counter() - t0)
                    sizes[side] = len(blob)
            results.append({
                "model": mname, "mode": mode, "params": int(model.count_params()),
                "to_tflite_s": median(times["to_tflite"]), "bare_s": median(times["bare"]),
                "ratio": median(times["to_tflite"]) / median(times["bare"]),
                "times_s": times, "sizes": sizes, "bare_route": route,
            })
    payload = {"bench": "convert", "settings": vars(args), "machine": m, "results": results}
    rows = [[r["model"], r["mode"], f"{r['to_tflite_s']:.2f}", f"{r['bare_s']:.2f} ({r['bare_route']})",
             f"{r['ratio']:.2f}x", f"{r['sizes']['to_tflite'] / 1024:.0f} / {r['sizes']['bare'] / 1024:.0f} KiB"]
            for r in results]
    md = [f"### Conversion time: to_tflite vs bare TFLiteConverter (median of {args.reps})", "",
          md_table(["model", "mode", "to_tflite (s)", "bare converter (s)", "to_tflite / bare", "output size (ours / bare)"], rows)]
    if args.quick:
        md.insert(1, "\n**Quick smoke run (--quick).**")
    j, mdp = write_results("convert", payload, "\n".join(md), Path(args.out) if args.out else None)
    print(Path(mdp).read_text())
    print(f"wrote {j} and {mdp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
