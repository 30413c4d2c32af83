"""Conversion time: `keras_compress.convert.to_tflite` against a bare `tf.lite.TFLiteConverter` call.

Same Keras model, same mode and (for int8) the same calibration arrays on every
side. Sides, rotated round by round (``_common.interleave``):

- ``to_tflite``: what users call (in-memory route where TF/Keras allow it);
- ``bare``: ``TFLiteConverter.from_keras_model(model)`` with the same
  optimizations / supported ops / I/O types set by hand (where it fails, the
  SavedModel route ``model.export(dir)`` + ``from_saved_model`` is timed
  instead and the JSON says so). It keeps a dynamic batch, so its file
  differs a little from ours; both sizes are recorded;
- ``export_route``: to_tflite's previous route, Keras's LiteRT export
  (SavedModel on disk, then ``from_saved_model``), timed for reference and used
  to prove that the in-memory route writes the same model: op lists and
  sizes are compared and recorded (``identical_ops``, ``sizes``).

A second table times the separate-process route (``isolate=True``, used by
default only for conversions known to crash TF's converter) against the
in-process one on the demo CNN in int8: its overhead is a fresh Python
importing TensorFlow and loading the model.

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

from _common import interleave, machine, md_table, median, write_results  # noqa: E402


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


def _ops(blob: bytes) -> list:
    from edgetpu.model import read_model

    return [(op.op, op.version) for op in read_model(blob).main.operators]


def _timed(fn, store: dict, key: str):
    def run() -> float:
        t0 = time.perf_counter()
        store[key] = fn()
        return time.perf_counter() - t0

    return run


def _sides(model, mode: str, calib: np.ndarray, n: int, outputs: dict) -> dict:
    from keras_compress.convert import to_tflite
    from keras_compress.convert.calibration import calibration_samples
    from keras_compress.convert.converter import convert_in_process
    from keras_compress.convert.options import ConversionOptions

    data = calib if mode == "int8" else None
    opts = ConversionOptions.build(quantization=mode, num_calibration_samples=n, verbose=False)

    def export_route():
        samples = calibration_samples(model, calib, n) if mode == "int8" else None
        return convert_in_process(model, opts, samples, route="export")

    return {
        "to_tflite": _timed(lambda: to_tflite(model, quantization=mode, representative_data=data,
                                              num_calibration_samples=n, verbose=False), outputs, "to_tflite"),
        "bare": _timed(lambda: _bare(model, mode, calib), outputs, "bare"),
        "export_route": _timed(export_route, outputs, "export_route"),
    }


def _bench_model(mname: str, model, mode: str, args, rng) -> dict:
    shape = tuple(model.inputs[0].shape[1:])
    calib = rng.uniform(0 if mname == "demo_cnn" else -1, 1, size=(args.calibration, *shape)).astype(np.float32)
    outputs: dict = {}
    sides = _sides(model, mode, calib, args.calibration, outputs)
    print(f"[convert] {mname} {mode}: warm-up, then {args.reps} interleaved rounds", file=sys.stderr, flush=True)
    for warm in sides.values():  # first calls trace and compile: not what is compared
        warm()
    times = interleave(sides, args.reps)
    bare_blob, bare_route = outputs["bare"]
    ours, export = outputs["to_tflite"], outputs["export_route"]
    return {
        "model": mname, "mode": mode, "params": int(model.count_params()), "times_s": times,
        "median_s": {k: median(v) for k, v in times.items()},
        "ratio": median(times["to_tflite"]) / median(times["bare"]),
        "sizes": {"to_tflite": len(ours), "export_route": len(export), "bare": len(bare_blob)},
        "identical_ops": _ops(ours) == _ops(export), "bare_route": bare_route,
    }


def _bench_isolation(reps: int, calib_n: int) -> dict:
    from keras_compress.convert import to_tflite
    from keras_compress.demo import build_demo_cnn

    model = build_demo_cnn()
    x = np.random.default_rng(1).uniform(0, 1, (calib_n, 32, 32, 1)).astype(np.float32)
    outputs: dict = {}
    run = {iso: _timed(lambda iso=iso: to_tflite(model, quantization="int8", representative_data=x, verbose=False,
                                                  isolate=iso), outputs, str(iso)) for iso in (False, True)}
    print(f"[convert] isolation overhead: warm-up, then {reps} interleaved rounds", file=sys.stderr, flush=True)
    run[False]()
    times = interleave({"in_process": run[False], "isolated": run[True]}, reps)
    return {"model": "demo_cnn", "mode": "int8", "times_s": times, "median_s": {k: median(v) for k, v in times.items()},
            "identical_ops": _ops(outputs["False"]) == _ops(outputs["True"]),
            "sizes": {"in_process": len(outputs["False"]), "isolated": len(outputs["True"])}}


def _markdown(results: list, iso: dict | None, args) -> str:
    rows = [[r["model"], r["mode"], f"{r['median_s']['to_tflite']:.2f}", f"{r['median_s']['bare']:.2f} ({r['bare_route']})",
             f"**{r['ratio']:.2f}x**", f"{r['median_s']['export_route']:.2f}",
             f"{r['sizes']['to_tflite']:,} / {r['sizes']['export_route']:,} B, ops {'identical' if r['identical_ops'] else 'DIFFER'}"]
            for r in results]
    md = [f"### Conversion time: to_tflite vs bare TFLiteConverter (median of {args.reps} interleaved rounds)", "",
          md_table(["model", "mode", "to_tflite (s)", "bare converter (s)", "to_tflite / bare", "previous export route (s)",
                    "to_tflite vs export route: size, ops"], rows)]
    if iso:
        m = iso["median_s"]
        line = (f"Separate-process conversion (`isolate=True`), demo CNN int8, median of {args.reps}: "
                f"{m['isolated']:.2f} s vs {m['in_process']:.2f} s in process "
                f"(overhead {m['isolated'] - m['in_process']:.2f} s; ops {'identical' if iso['identical_ops'] else 'DIFFER'}).")
        md += ["", line]
    if args.quick:
        md.insert(1, "\n**Quick smoke run (--quick).**")
    return "\n".join(md)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=5, help="interleaved rounds per model and mode (default 5)")
    p.add_argument("--models", default="demo_cnn,mobilenetv2")
    p.add_argument("--modes", default="float32,int8")
    p.add_argument("--calibration", type=int, default=16, help="calibration samples for int8 (default 16)")
    p.add_argument("--no-isolation", action="store_true", help="skip the separate-process overhead table")
    p.add_argument("--quick", action="store_true", help="smoke test: demo CNN only, 1 round")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.models = 1, "demo_cnn"

    m = machine()
    rng = np.random.default_rng(0)
    results = [_bench_model(mname, model, mode, args, rng)
               for mname, model in _models(args.models.split(",")).items() for mode in args.modes.split(",")]
    iso = None if args.no_isolation else _bench_isolation(args.reps, args.calibration)
    payload = {"bench": "convert", "settings": vars(args), "machine": m, "results": results, "isolation": iso}
    j, mdp = write_results("convert", payload, _markdown(results, iso, args), Path(args.out) if args.out else None)
    print(Path(mdp).read_text())
    print(f"wrote {j} and {mdp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
