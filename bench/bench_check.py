"""CPU time of `edgetpu.check` on MobileNetV2 224 int8: this tree against a baseline tree, interleaved.

The baseline is the ``edgetpu`` package of another git revision (default
``main``, extracted with ``git archive``) or of a folder (``--baseline-dir``).
Each round runs, in a fresh child process per side (so the two packages never
share a process), one warm-up check then ``--runs`` checks of the same model
bytes, timing each with ``time.process_time`` (CPU time of the process: less
sensitive to other load than wall time); sides alternate round by round. The
figure per side is the median over rounds of the per-round median.

The model is ``keras_compress.convert.to_tflite(MobileNetV2(weights=None,
input_shape=(224, 224, 3)), target="edgetpu")`` with seed 0 (as the test
fixture), converted once and cached in ``--cache`` (or given with ``--model``).

Run: TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_check.py [--quick]
Writes bench/results/check.json and bench/results/check.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import interleave, machine, md_table, median, write_results

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import edgetpu.compat
data = open(sys.argv[2], "rb").read()
edgetpu.compat.check(data)
times = []
for _ in range(int(sys.argv[3])):
    t = time.process_time()
    edgetpu.compat.check(data)
    times.append(time.process_time() - t)
assert edgetpu.compat.__file__.startswith(sys.argv[1]), edgetpu.compat.__file__
print(json.dumps(times))
"""


def _model(path: Path) -> Path:
    if path.exists():
        return path
    import keras

    from keras_compress.convert import to_tflite

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    rep = __import__("numpy").random.default_rng(0).uniform(-1, 1, (4, 224, 224, 3)).astype("float32")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(to_tflite(model, target="edgetpu", representative_data=rep, verbose=False))
    os.replace(tmp, path)
    return path


def _baseline(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "edgetpu"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _side(package_root: Path, model: Path, runs: int):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def once() -> float:
        out = subprocess.run([sys.executable, "-c", CHILD, str(package_root), str(model), str(runs)],
                             capture_output=True, text=True, env=env, check=True)
        return median(json.loads(out.stdout.strip().splitlines()[-1])) * 1000

    return once


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline-ref", default="main", help="git revision whose edgetpu/ is the baseline (default main)")
    p.add_argument("--baseline-dir", default=None, help="a folder holding the baseline edgetpu/ package instead")
    p.add_argument("--model", default=None, help="a .tflite to check instead of the cached MobileNetV2 224 int8")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "keras_compress_bench"))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="3 rounds of 5 checks (smoke test)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    rounds, runs = (3, 5) if a.quick else (a.rounds, a.runs)
    m = machine()
    model = Path(a.model) if a.model else _model(Path(a.cache) / "mobilenet_v2_224_int8.tflite")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(a.baseline_dir) if a.baseline_dir else _baseline(a.baseline_ref, Path(tmp))
        res = interleave({"baseline": _side(base, model, runs), "this tree": _side(ROOT, model, runs)}, rounds)
    figures = {k: {"median_ms": median(v), "rounds_ms": v} for k, v in res.items()}
    ratio = figures["this tree"]["median_ms"] / figures["baseline"]["median_ms"]
    label = a.baseline_dir or f"git {a.baseline_ref}"
    rows = [[k + (f" ({label})" if k == "baseline" else ""), f"{f['median_ms']:.2f}",
             f"{min(f['rounds_ms']):.2f}-{max(f['rounds_ms']):.2f}"] for k, f in figures.items()]
    md = (f"#### edgetpu.check CPU time: {model.name}, median of {rounds} interleaved rounds x {runs} checks\n\n"
          + md_table(["edgetpu", "ms per check (CPU)", "round range"], rows)
          + f"\n\nThis tree / baseline: {ratio:.2f}x (done-when: not worse than today, <= 1.0x).")
    payload = {"machine": m, "model": str(model), "model_bytes": model.stat().st_size, "rounds": rounds,
               "runs": runs, "baseline": label, "figures": figures, "ratio": ratio}
    j, md_path = write_results("check", payload, md, Path(a.out) if a.out else None)
    print(md)
    print(f"wrote {j} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
