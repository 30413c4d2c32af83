"""What running ``edgetpu run`` / ``edgetpu bench`` in a child process costs, side by side with ``--in-process``.

The CLI loads and invokes a model in a forked child by default (edgetpu.isolate),
so that a model which crashes the TFLite interpreter ends in one error line
instead of killing the command. This measures the price, as a user sees it:
the wall time of the whole command (``python -m edgetpu.cli ...`` in a fresh
process), isolated and ``--in-process`` interleaved round by round, and, for
``bench``, the invoke latency each mode reports (isolation must not change it).

Models: the digits CNN of the demo's size (int8, 32x32x1) and MobileNetV2 224
int8 (``weights=None``, calibrated on random data), both from ``to_tflite``.

Run: TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_isolation.py  [--quick]
Writes bench/results/isolation.json and bench/results/isolation.md.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import interleave, machine, md_table, median, write_results

REPO = Path(__file__).resolve().parent.parent


def build_models(folder: Path, quick: bool) -> dict[str, Path]:
    import keras

    from keras_compress.convert import to_tflite

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    L = keras.layers
    models = {"digits_cnn": keras.Sequential([keras.Input((32, 32, 1)), L.Conv2D(16, 3, activation="relu"),
                                              L.MaxPooling2D(), L.Conv2D(32, 3, activation="relu"),
                                              L.MaxPooling2D(), L.Flatten(), L.Dense(10)])}
    if not quick:
        models["mobilenet_v2_224"] = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    out = {}
    for name, model in models.items():
        shape = tuple(model.inputs[0].shape[1:])
        calib = rng.uniform(-1, 1, size=(8, *shape)).astype(np.float32)
        out[name] = folder / f"{name}_int8.tflite"
        out[name].write_bytes(to_tflite(model, quantization="int8", representative_data=calib, verbose=False))
    return out


def _cli(argv: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edgetpu.cli", *argv], capture_output=True, text=True, env=env,
                       check=False)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"edgetpu {' '.join(argv)} failed: {r.stderr.strip()}")
    return dt * 1000.0, r.stdout


def _run_task(argv: list[str]):
    return lambda: _cli(argv)[0]


def _bench_task(argv: list[str], latencies: list[float]):
    """Wall time of one ``edgetpu bench`` command; the median invoke latency it reports goes to ``latencies``."""

    def task() -> float:
        wall, out = _cli(argv)
        latencies.append(json.loads(out)[0]["median_ms"])
        return wall

    return task


FORK_SCRIPT = """
import json, statistics, sys, time
import numpy as np
import edgetpu
edgetpu.interpreter_backend()  # the interpreter package loaded, as in `edgetpu run` before it forks
from edgetpu.isolate import call_in_child
out = {}
for name, fn, arg in (("trivial", int, 0), ("array_1000x10_float32", np.copy, np.zeros((1000, 10), np.float32))):
    times = []
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter()
        call_in_child(fn, arg, what="timing")
        times.append((time.perf_counter() - t) * 1000.0)
    out[name] = {"median_ms": statistics.median(times), "min_ms": min(times)}
print(json.dumps(out))
"""


def fork_overhead_ms(n: int = 50) -> dict:
    """Cost of edgetpu.isolate.call_in_child itself (fork, pipe, pickle), in two kinds of process.

    ``cli_like``: a fresh process with only numpy, edgetpu and the interpreter
    package loaded (what ``edgetpu run`` forks). ``tensorflow_loaded``: this
    process, TensorFlow and Keras imported: fork copies its much larger page
    tables, so a library caller with TensorFlow loaded pays more per call.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(n)], capture_output=True, text=True, env=env,
                       check=True)
    out = {"cli_like": json.loads(r.stdout.strip().splitlines()[-1])}
    from edgetpu.isolate import call_in_child

    times = []
    for _ in range(n):
        t = time.perf_counter()
        call_in_child(int, 0, what="timing")
        times.append((time.perf_counter() - t) * 1000.0)
    out["tensorflow_loaded"] = {"trivial": {"median_ms": median(times), "min_ms": min(times)}}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the small model only, 3 rounds (figures meaningless)")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    m = machine()
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), args.quick)
        bench_ms: dict[str, list[float]] = {}
        tasks = {}
        for name, path in models.items():
            for mode, extra in (("isolated", []), ("in_process", ["--in-process"])):
                tasks[f"{name}/run/{mode}"] = _run_task(["run", str(path), *extra])
                tasks[f"{name}/bench/{mode}"] = _bench_task(
                    ["bench", str(path), "--runs", "30", "--warmup", "3", "--threads", "1", "--json", *extra],
                    bench_ms.setdefault(f"{name}/bench/{mode}", []))
        walls = interleave(tasks, rounds)
    fork = fork_overhead_ms()
    rows, results = [], {"call_in_child": fork}
    for name in models:
        for cmd in ("run", "bench"):
            iso, inp = median(walls[f"{name}/{cmd}/isolated"]), median(walls[f"{name}/{cmd}/in_process"])
            res = {"isolated_wall_ms": iso, "in_process_wall_ms": inp, "overhead_ms": iso - inp,
                   "walls": {k: walls[f"{name}/{cmd}/{k}"] for k in ("isolated", "in_process")}}
            lat = ""
            if cmd == "bench":
                li, lp = median(bench_ms[f"{name}/bench/isolated"]), median(bench_ms[f"{name}/bench/in_process"])
                res.update(isolated_invoke_ms=li, in_process_invoke_ms=lp)
                lat = f"{li:.3f} / {lp:.3f}"
            results[f"{name}/{cmd}"] = res
            rows.append([name, f"edgetpu {cmd}", f"{iso:.0f}", f"{inp:.0f}", f"{iso - inp:+.0f} ({(iso / inp - 1) * 100:+.1f}%)",
                         lat or "-"])
    md = (f"#### Child-process isolation of `edgetpu run` / `bench`: whole-command wall time, median of {rounds} "
          "interleaved rounds\n\n"
          + md_table(["model (int8)", "command", "isolated, ms", "--in-process, ms", "cost of isolation",
                      "bench median invoke, ms (isolated / in-process)"], rows)
          + "\n\n`call_in_child` itself (fork, pipe, pickle; median of 50 calls): "
          + "; ".join(f"{where}: " + ", ".join(f"{k} {v['median_ms']:.2f} ms (min {v['min_ms']:.2f})"
                                               for k, v in d.items()) for where, d in fork.items())
          + ". cli_like = a process with only numpy, edgetpu and the interpreter package loaded, as the CLI forks; "
          "tensorflow_loaded = the bench process itself (fork copies its larger page tables).")
    m["command"] = "bench/bench_isolation.py" + (" --quick" if args.quick else "")
    j, mdp = write_results("isolation", {"machine": m, "rounds": rounds, "results": results}, md,
                           Path(args.out) if args.out else None)
    print(md)
    print(f"wrote {j} and {mdp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
