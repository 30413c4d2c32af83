"""Run every benchmark, one after the other, and combine their tables into bench/results/README.md.

Each bench runs in its own Python process (as its own one-line command would),
so one failing does not stop the others; the exit status is 1 if any failed.
Ours: bench_latency.py, bench_convert.py, bench_compression.py. The pruning
and QAT benches against tfmot (bench_pruning.py, bench_qat.py; written with
those issues, needing the ``bench`` extra) run too when present, unless
``--skip-peers`` or ``--quick``.

Run (on a quiet machine, for the README's figures):
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/run_all.py
Smoke test (seconds, figures meaningless):
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/run_all.py --quick --out /tmp/bench
Writes <out>/{latency,convert,compression}.{json,md}, <out>/run_all.json and <out>/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import RESULTS, machine, machine_md, loadavg  # noqa: E402

OURS = ("bench_latency.py", "bench_convert.py", "bench_compression.py")
PEERS = ("bench_pruning.py", "bench_qat.py")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke-test every bench of ours (--quick); peers skipped")
    p.add_argument("--skip-peers", action="store_true", help="do not run bench_pruning.py / bench_qat.py")
    p.add_argument("--only", default=None, help="comma-separated bench file names to run")
    p.add_argument("--out", default=str(RESULTS), help="results folder (default bench/results)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}

    benches = [(b, ["--out", str(out)] + (["--quick"] if args.quick else [])) for b in OURS]
    if not (args.quick or args.skip_peers):
        for b in PEERS:
            if (HERE / b).is_file():
                benches.append((b, []))  # peers keep their own defaults and output paths
    if args.only:
        wanted = set(args.only.split(","))
        benches = [x for x in benches if x[0] in wanted]

    m = machine()
    runs = []
    for name, extra in benches:
        cmd = [sys.executable, str(HERE / name), *extra]
        print(f"[run_all] {' '.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env)
        runs.append({"bench": name, "command": cmd, "returncode": proc.returncode,
                     "seconds": round(time.perf_counter() - t0, 1)})
    m["loadavg_end"] = loadavg()
    (out / "run_all.json").write_text(json.dumps({"machine": m, "runs": runs, "quick": args.quick}, indent=2) + "\n")

    parts = ["## Benchmarks", "",
             f"Reproduce: `TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/run_all.py` ({time.strftime('%Y-%m-%d')}).", "",
             machine_md(m), ""]
    if args.quick:
        parts += ["**Quick smoke run: the figures below are not measurements to quote.**", ""]
    for stem in ("latency", "convert", "compression", "pruning", "qat"):
        md = out / f"{stem}.md"
        if md.is_file():
            text = md.read_text().strip()
            lines = [line for line in text.splitlines() if not line.startswith("Machine: ")]
            parts += ["\n".join(lines).strip(), ""]
        elif (out / f"{stem}.json").is_file():
            parts += [f"### {stem}: see `{stem}.json`", ""]
    failed = [r for r in runs if r["returncode"] != 0]
    if failed:
        parts += ["Failed: " + ", ".join(f"{r['bench']} (exit {r['returncode']})" for r in failed), ""]
    (out / "README.md").write_text("\n".join(parts))
    print((out / "README.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
