"""`edgetpu`: check, compile, run and benchmark .tflite models.

    edgetpu check MODEL [--json] [--runtime VERSION]
    edgetpu compile MODEL [-o DIR] [-n N] [-m N] [-d] [--timeout S]
    edgetpu run MODEL [--input X.npy] [--top-k K] [--threads N]
    edgetpu bench MODEL [MODEL ...] [--runs N] [--warmup N] [--threads N] [--no-xnnpack] [--json]

Bad input prints one line to stderr (no traceback) and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from edgetpu.errors import EdgeTPUError

__all__ = ["main", "build_parser"]


def _cmd_check(args: argparse.Namespace) -> int:
    from edgetpu.compat import check

    result = check(args.model, runtime=args.runtime)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.format_table())
    return result.exit_code


def _cmd_compile(args: argparse.Namespace) -> int:
    from edgetpu.compiler import compile as compile_model

    result = compile_model(
        args.model,
        args.out_dir,
        num_segments=args.num_segments,
        min_runtime_version=args.min_runtime_version,
        search_delegate=args.search_delegate,
        timeout_s=args.timeout,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.format_summary())
    return 0


def _load_input(path: str | None, interpreter) -> np.ndarray:
    detail = interpreter.get_input_details()[0]
    if path is None:  # a random sample in the input's own dtype, to smoke-test a model
        from edgetpu.bench import _random_input

        return _random_input(detail, np.random.default_rng(0))
    p = Path(path)
    if p.suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EdgeTPUError(f"{p}: cannot read a numpy array ({e})") from None
    from PIL import Image  # an image file: resize to the input size, scale to [0, 1]

    try:
        with Image.open(p) as im:
            h, w, c = (int(s) for s in detail["shape"][1:4])
            im = im.convert("L" if c == 1 else "RGB").resize((w, h))
            a = np.asarray(im, dtype=np.float32) / 255.0
    except OSError as e:
        raise EdgeTPUError(f"{p}: expected a .npy array or an image file ({e})") from None
    return a.reshape(h, w, c)


def _cmd_run(args: argparse.Namespace) -> int:
    from edgetpu.runtime import classify, make_interpreter, run

    interpreter = make_interpreter(args.model, device=args.device, num_threads=args.threads)
    x = _load_input(args.input, interpreter)
    if args.top_k:
        results = classify(interpreter, x, top_k=args.top_k)
        if results and isinstance(results[0], list):
            for i, r in enumerate(results):
                print(f"{i}: " + ", ".join(f"{c.id} ({c.score:.3f})" for c in r))
        else:
            print(", ".join(f"{c.id} ({c.score:.3f})" for c in results))
    else:
        out = run(interpreter, x)
        outs = out if isinstance(out, list) else [out]
        for i, o in enumerate(outs):
            print(f"output {i}: shape {o.shape}, dtype {o.dtype}")
            print(np.array2string(o, precision=4, threshold=50))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from edgetpu.bench import benchmark

    results = []
    for model in args.models:
        r = benchmark(
            model,
            runs=args.runs,
            warmup=args.warmup,
            num_threads=args.threads,
            use_xnnpack=not args.no_xnnpack,
            device=args.device,
        )
        r["model"] = model
        r["size_bytes"] = Path(model).stat().st_size
        results.append(r)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    names = [Path(r["model"]).name for r in results]
    keys = ("median_ms", "mean_ms", "p90_ms", "p99_ms", "std_ms", "min_ms")
    w0 = max(len("model"), *(len(n) for n in names))
    print(f"{'model':<{w0}}  {'size':>10}  " + "  ".join(f"{k:>10}" for k in keys))
    for n, r in zip(names, results):
        print(f"{n:<{w0}}  {r['size_bytes']:>10}  " + "  ".join(f"{r[k]:>10.3f}" for k in keys))
    print(f"({args.runs} runs after {args.warmup} warm-up, threads={args.threads or 'default'}, "
          f"xnnpack={'off' if args.no_xnnpack else 'on'}, interpreter={results[0]['backend']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgetpu", description="Check, compile, run and benchmark .tflite models for the Coral Edge TPU and the CPU.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens (delegate choice, fallbacks)")
    sub = p.add_subparsers(dest="command", required=True, metavar="{check,compile,run,bench}")

    from edgetpu.check_result import EXIT_CODES

    c = sub.add_parser(
        "check", help="predict which ops map to the Edge TPU (no compiler needed)",
        description="Predict which ops edgetpu_compiler 16 maps to the Edge TPU: the CPU ops before the Edge TPU "
        "segment, the segment, the CPU ops after it, each with its reason. Needs only numpy.",
        epilog="exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    )
    c.add_argument("model")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.add_argument("--runtime", metavar="VERSION", default=None,
                   help="also list every op whose version this TF Lite runtime lacks (e.g. 2.14 for tflite-runtime "
                   "2.14); exit 4 if any")
    c.set_defaults(func=_cmd_check)

    c = sub.add_parser("compile", help="run Coral's edgetpu_compiler and summarize its report")
    c.add_argument("model")
    c.add_argument("-o", "--out_dir", "--out-dir", dest="out_dir", default=None)
    c.add_argument("-n", "--num_segments", "--num-segments", dest="num_segments", type=int, default=None)
    c.add_argument("-m", "--min_runtime_version", "--min-runtime-version", dest="min_runtime_version", type=int, default=None)
    c.add_argument("-d", "--search_delegate", "--search-delegate", dest="search_delegate", action="store_true")
    c.add_argument("--timeout", type=int, default=180, help="seconds (default 180)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_compile)

    c = sub.add_parser("run", help="run a model on an input (.npy or image) or on random data")
    c.add_argument("model")
    c.add_argument("--input", default=None, help=".npy array (N, *input_shape) or an image file")
    c.add_argument("--top-k", type=int, default=0, help="print the top-k classes instead of raw outputs")
    c.add_argument("--threads", type=int, default=None)
    c.add_argument("--device", default=None, help="Edge TPU: ':0', 'usb', 'usb:0', 'pci', 'pci:0'")
    c.set_defaults(func=_cmd_run)

    c = sub.add_parser("bench", help="latency of one or more models, side by side")
    c.add_argument("models", nargs="+", metavar="MODEL")
    c.add_argument("--runs", type=int, default=100)
    c.add_argument("--warmup", type=int, default=10)
    c.add_argument("--threads", type=int, default=None)
    c.add_argument("--no-xnnpack", action="store_true", help="disable the default XNNPACK delegate")
    c.add_argument("--device", default=None)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return int(args.func(args))
    except EdgeTPUError as e:
        print(f"edgetpu {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgetpu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
