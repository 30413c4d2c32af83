"""`edgetpu`: check, compile, run and benchmark .tflite models.

    edgetpu check MODEL [--json] [--runtime VERSION]
    edgetpu compile MODEL [-o DIR] [-n N] [-m N] [-d] [--timeout S]
    edgetpu run MODEL [--input X.npy] [--top-k K] [--threads N] [--in-process]
    edgetpu bench MODEL [MODEL ...] [--runs N] [--warmup N] [--threads N] [--no-xnnpack] [--json] [--in-process]

Bad input prints one line to stderr (no traceback) and exits 2; Ctrl-C exits
130 and SIGTERM 143, leaving no half-written file. ``run`` and ``bench`` load
and invoke the model in a child process (:mod:`edgetpu.isolate`), so a model
that crashes the TFLite interpreter is reported as one line instead of
killing the command; ``--in-process`` skips that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgetpu.errors import EdgeTPUError, Terminated

__all__ = ["build_parser", "main"]


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


def _load_input(path: str | None, interpreter):
    import numpy as np

    detail = interpreter.get_input_details()[0]
    if path is None:  # a random sample in the input's own dtype, to smoke-test a model
        from edgetpu.bench import random_input

        return random_input(detail, np.random.default_rng(0))
    p = Path(path)
    if p.suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EdgeTPUError(f"{p}: cannot read a numpy array ({e})") from None
    try:  # an image file: resize to the input size, scale to [0, 1]
        from PIL import Image
    except ImportError:
        raise EdgeTPUError(f"{p}: reading an image needs Pillow (`pip install pillow`); or give a .npy array") from None

    try:
        with Image.open(p) as im:
            h, w, c = (int(s) for s in detail["shape"][1:4])
            im = im.convert("L" if c == 1 else "RGB").resize((w, h))
            a = np.asarray(im, dtype=np.float32) / 255.0
    except OSError as e:
        raise EdgeTPUError(f"{p}: expected a .npy array or an image file ({e})") from None
    return a.reshape(h, w, c)


def _run_lines(model: str, input_path: str | None, top_k: int, device: str | None, threads: int | None) -> list[str]:
    """What ``edgetpu run`` prints (computed where the model runs: the child process by default)."""
    import numpy as np

    from edgetpu.runtime import classify, make_interpreter, run

    interpreter = make_interpreter(model, device=device, num_threads=threads)
    x = _load_input(input_path, interpreter)
    fmt = lambda r: ", ".join(f"{c.id} ({c.score:.3f})" for c in r)
    if top_k:
        results = classify(interpreter, x, top_k=top_k)
        if results and isinstance(results[0], list):
            return [f"{i}: " + fmt(r) for i, r in enumerate(results)]
        return [fmt(results)]
    out = run(interpreter, x)
    lines = []
    for i, o in enumerate(out if isinstance(out, list) else [out]):
        lines.append(f"output {i}: shape {o.shape}, dtype {o.dtype}")
        lines.append(np.array2string(o, precision=4, threshold=50))
    return lines


def _call(args: argparse.Namespace, fn: Callable[..., Any], *fn_args: Any, what: str, where: str, **kw: Any) -> Any:
    """``fn(*fn_args, **kw)``, in a child process unless ``--in-process``.

    Without ``-v`` the TFLite runtime's own "INFO: ..." lines (e.g. "Created
    TensorFlow Lite XNNPACK delegate for CPU.") are dropped from the child's
    stderr, so an error is the only line printed.
    """
    if args.in_process:
        return fn(*fn_args, **kw)
    from edgetpu.isolate import call_in_child

    hide = () if args.verbose else ("INFO: ",)
    return call_in_child(fn, *fn_args, what=what, where=where, hide_stderr=hide, **kw)


def _cmd_run(args: argparse.Namespace) -> int:
    lines = _call(args, _run_lines, args.model, args.input, args.top_k, args.device, args.threads,
                  what="running the model", where=args.model)
    print("\n".join(lines))
    return 0


def _bench_table(results: list[dict], args: argparse.Namespace) -> list[str]:
    names = [Path(r["model"]).name for r in results]
    keys = ("median_ms", "mean_ms", "p90_ms", "p99_ms", "std_ms", "min_ms")
    w0 = max(len("model"), *(len(n) for n in names))
    lines = [f"{'model':<{w0}}  {'size':>10}  " + "  ".join(f"{k:>10}" for k in keys)]
    for n, r in zip(names, results):
        lines.append(f"{n:<{w0}}  {r['size_bytes']:>10}  " + "  ".join(f"{r[k]:>10.3f}" for k in keys))
    lines.append(f"({args.runs} runs after {args.warmup} warm-up, threads={results[0]['num_threads'] or 'default'}, "
                 f"xnnpack={'on' if results[0]['xnnpack'] else 'off'}, interpreter={results[0]['backend']})")
    return lines


def _cmd_bench(args: argparse.Namespace) -> int:
    from edgetpu.bench import benchmark

    results = []
    for model in args.models:  # one child per model: a crash names the model that caused it
        r = _call(args, benchmark, model, what="benchmarking the model", where=model, runs=args.runs,
                  warmup=args.warmup, num_threads=args.threads, use_xnnpack=not args.no_xnnpack, device=args.device)
        r["model"] = model
        r["size_bytes"] = Path(model).stat().st_size
        results.append(r)
    print(json.dumps(results, indent=2) if args.json else "\n".join(_bench_table(results, args)))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


def _add_run_parsers(sub) -> None:
    isolate_help = "load and run the model in this process, not in a child process (a crash then kills the command)"
    c = sub.add_parser("run", help="run a model on an input (.npy or image) or on random data")
    c.add_argument("model")
    c.add_argument("--input", default=None, help=".npy array (N, *input_shape) or an image file")
    c.add_argument("--top-k", type=_int_at_least(0), default=0, help="print the top-k classes instead of raw outputs")
    c.add_argument("--threads", type=_int_at_least(1), default=None)
    c.add_argument("--device", default=None, help="Edge TPU: ':0', 'usb', 'usb:0', 'pci', 'pci:0'")
    c.add_argument("--in-process", action="store_true", help=isolate_help)
    c.set_defaults(func=_cmd_run)

    c = sub.add_parser("bench", help="latency of one or more models, side by side")
    c.add_argument("models", nargs="+", metavar="MODEL")
    c.add_argument("--runs", type=_int_at_least(1), default=100)
    c.add_argument("--warmup", type=_int_at_least(0), default=10)
    c.add_argument("--threads", type=_int_at_least(1), default=None)
    c.add_argument("--no-xnnpack", action="store_true", help="disable the default XNNPACK delegate")
    c.add_argument("--device", default=None)
    c.add_argument("--json", action="store_true")
    c.add_argument("--in-process", action="store_true", help=isolate_help)
    c.set_defaults(func=_cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgetpu", description="Check, compile, run and benchmark .tflite models for the Coral Edge TPU and the CPU.")
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
    c.add_argument("-o", "--out_dir", "--out-dir", dest="out_dir", default=None, help="output folder (default: the model's)")
    c.add_argument("-n", "--num_segments", "--num-segments", dest="num_segments", type=_int_at_least(1), default=None)
    c.add_argument("-m", "--min_runtime_version", "--min-runtime-version", dest="min_runtime_version",
                   type=_int_at_least(1), default=None)
    c.add_argument("-d", "--search_delegate", "--search-delegate", dest="search_delegate", action="store_true")
    c.add_argument("--timeout", type=_int_at_least(1), default=180, help="seconds (default 180)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_compile)

    _add_run_parsers(sub)
    return p


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 on bad input, 130 on Ctrl-C, 143 on SIGTERM)."""
    command = "edgetpu"
    try:
        with _sigterm_as_exception():
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as e:  # --help (0) or a usage error (2, one line already printed)
                return e.code if isinstance(e.code, int) else 2
            command = f"edgetpu {args.command}"
            logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
            try:
                return int(args.func(args))
            except EdgeTPUError as e:
                print(f"{command}: error: {e}", file=sys.stderr)
                return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{command}: terminated", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
