"""Compression: accuracy against float32 size and gzip size for every demo variant.

Runs the demo recipe (``keras_compress.demo.run_demo``, the pipeline's stages:
every variant of ``recipes/demo.yaml`` appears) or reads an existing demo
folder (``--from DIR``), and tabulates each variant's accuracy and its file
and gzip sizes relative to the float32 variant. Rows are read generically:
keys a row lacks print as "-".

Run: TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_compression.py [--from DIR] [--epochs N]
Writes bench/results/compression.json and bench/results/compression.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, md_table, write_results  # noqa: E402


def _pct(v):
    return "-" if v is None else f"{v:.2%}"


def _size(v):
    return "-" if v is None else f"{v / 1024:.1f} KiB"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="src", default=None, help="an existing demo folder (default: run the demo now)")
    p.add_argument("--epochs", type=int, default=12, help="demo baseline epochs when running it (default 12)")
    p.add_argument("--variants", default=None, help="comma-separated demo variants (default: all)")
    p.add_argument("--keep", default=None, help="run the demo into this folder (default: a temp folder)")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 epochs, baseline variant only")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.variants = 2, args.variants or "baseline"

    m = machine()
    tmp = None
    if args.src:
        folder = Path(args.src)
        rows = json.loads((folder / "summary.json").read_text())
        run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
    else:
        from keras_compress.demo import run_demo

        folder = Path(args.keep) if args.keep else Path(tmp := tempfile.mkdtemp(prefix="kc_bench_demo_"))
        rows = run_demo(folder, epochs=args.epochs, variants=args.variants.split(",") if args.variants else None, verbose=False)
        run = json.loads((folder / "run.json").read_text())
    ref = next((r for r in rows if r.get("mode") == "float32" or r.get("variant") == "float32"), None)
    out = []
    for r in rows:
        s, g = r.get("size_bytes"), r.get("gzip_bytes")
        out.append({
            "variant": r.get("variant"), "mode": r.get("mode"), "accuracy": r.get("accuracy"),
            "accuracy_delta": None if ref is None or r.get("accuracy") is None else r["accuracy"] - ref["accuracy"],
            "size_bytes": s, "gzip_bytes": g,
            "size_vs_float32": None if ref is None or s is None else s / ref["size_bytes"],
            "gzip_vs_float32": None if ref is None or g is None or ref.get("gzip_bytes") is None else g / ref["gzip_bytes"],
            "sparsity": r.get("sparsity"), "edgetpu_mapped": r.get("edgetpu_mapped"),
        })
    payload = {"bench": "compression", "source": str(folder), "settings": vars(args), "machine": m,
               "demo_run": run, "reference": None if ref is None else ref.get("variant"), "results": out}
    rows_md = [[o["variant"], o["mode"] or "-", _pct(o["accuracy"]),
                "-" if o["accuracy_delta"] is None else f"{o['accuracy_delta'] * 100:+.2f} pt",
                _size(o["size_bytes"]), "-" if o["size_vs_float32"] is None else f"{o['size_vs_float32']:.3f}",
                _size(o["gzip_bytes"]), "-" if o["gzip_vs_float32"] is None else f"{o['gzip_vs_float32']:.3f}",
                "-" if o["sparsity"] is None else f"{o['sparsity']:.0%}"] for o in out]
    baseline = run.get("keras_accuracy", {})
    baseline = baseline.get("baseline", float("nan")) if isinstance(baseline, dict) else baseline
    md = [f"### Compression: demo variants on digits (baseline {baseline:.2%} in Keras; "
          f"{args.epochs if not args.src else '?'} epochs)", "",
          md_table(["variant", "mode", "accuracy", "vs float32", "size", "size / float32", "gzip", "gzip / float32 gzip", "sparsity"], rows_md)]
    if args.quick:
        md.insert(1, "\n**Quick smoke run (--quick): 2 epochs, baseline variant only.**")
    j, mdp = write_results("compression", payload, "\n".join(md), Path(args.out) if args.out else None)
    print(Path(mdp).read_text())
    print(f"wrote {j} and {mdp}", file=sys.stderr)
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
