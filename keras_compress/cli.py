"""`keras-compress`: the training-side command line.

    keras-compress demo [--out DIR] [--epochs N] [--seed S]
    keras-compress convert MODEL.keras OUT.tflite [--mode int8] [--data digits|shapes|X.npy] [--target edgetpu]
    keras-compress run RECIPE.yaml|NAME [--out DIR]
    keras-compress search MODEL.keras --data NAME --budget size=25% [--budget ...] [--target cpu|edgetpu] --out DIR
    keras-compress report DIR

Bad input prints one line to stderr (no traceback), writes nothing and exits
2; Ctrl-C exits 130, also when the interrupt landed somewhere that swallowed
it. TensorFlow's start-up lines are silenced here, in the CLI, before our
first line (importing `keras_compress` as a library changes no environment).

Example:
    >>> from keras_compress.cli import build_parser
    >>> build_parser().parse_args(["run", "demo", "--out", "x"]).out
    'x'
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


class _Interrupts:
    """Ctrl-C handling: remember it even when a C++ destructor swallows the KeyboardInterrupt."""

    def __init__(self):
        self.seen = False
        self._previous = None

    def _handler(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed (called before every progress line)."""
        if self.seen:
            raise KeyboardInterrupt

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread (e.g. called from a test worker): keep Python's handler
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _import_tensorflow_quietly(verbose: bool) -> None:
    """Import TensorFlow with its C++ start-up lines (absl, the CUDA probe) sent to /dev/null.

    ``TF_CPP_MIN_LOG_LEVEL`` does not reach the lines absl prints before it is
    initialised (tensorflow#100442), so file descriptor 2 is pointed at
    /dev/null for the import only; an import error still surfaces as an exception.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if verbose:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # e.g. tf.function retracing warnings


def _progress(args: argparse.Namespace):
    from keras_compress.progress import Progress

    return Progress(check=args.interrupts.check)


def _cmd_demo(args: argparse.Namespace) -> int:
    from keras_compress.demo import run_demo

    _import_tensorflow_quietly(args.verbose)
    run_demo(args.out, epochs=args.epochs, seed=args.seed, progress=_progress(args))
    return 0


def _calibration_data(spec: str | None):
    import numpy as np

    from keras_compress.errors import CalibrationDataError

    if spec is None:
        return None
    p = Path(spec)
    if p.suffix == ".npy":
        if not p.is_file():
            raise CalibrationDataError(f"{p}: no such file (expected a .npy array of calibration inputs)")
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CalibrationDataError(f"{p}: not a readable .npy array ({e})") from None
    from keras_compress.datasets import load_dataset

    (x, _), _ = load_dataset(spec)
    return x


def _check_convert_paths(src: Path, dst: Path) -> None:
    """Every way the command line's paths can be wrong, before anything is loaded or written."""
    from keras_compress.errors import OutputError

    if not src.is_file():
        raise OutputError(f"{src}: no such file (expected a saved Keras model, .keras)")
    if src.suffix != ".keras":
        raise OutputError(f"{src}: expected a .keras model file, found suffix {src.suffix or '(none)'!r}")
    if dst.suffix != ".tflite":
        raise OutputError(f"{dst}: the output must end in .tflite")
    if dst.is_dir():
        raise OutputError(f"{dst}: is a folder; expected the path of the .tflite file to write")
    blocker = next((p for p in dst.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"{dst}: cannot write there: {blocker} is a file, not a folder")
    if dst.exists() and dst.resolve() == src.resolve():
        raise OutputError(f"{dst}: refusing to overwrite the input model")


def _cmd_convert(args: argparse.Namespace) -> int:
    from keras_compress.errors import CompressError

    src, dst = Path(args.model), Path(args.output)
    _check_convert_paths(src, dst)
    _import_tensorflow_quietly(args.verbose)
    import keras

    from keras_compress.convert import to_tflite

    try:
        model = keras.saving.load_model(src, compile=False)
    except Exception as e:  # noqa: BLE001 - loading fails in many ways; report it as bad input
        raise CompressError(f"{src}: could not load the Keras model: {type(e).__name__}: {e}") from None
    data = to_tflite(
        model,
        dst,
        quantization=args.mode,
        representative_data=_calibration_data(args.data),
        num_calibration_samples=args.samples,
        input_type=args.input_type,
        output_type=args.output_type,
        target=args.target,
    )
    args.interrupts.check()
    print(f"wrote {dst} ({len(data):,} bytes, {args.mode})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from keras_compress.recipes.recipe import load_recipe

    recipe = load_recipe(args.recipe)  # a bad recipe fails here, before TensorFlow is imported
    _import_tensorflow_quietly(args.verbose)
    from keras_compress.pipeline.run import run_recipe

    run_recipe(recipe, out_dir=args.out, progress=_progress(args))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from keras_compress.report import write_report

    path = write_report(args.dir, args.output)
    print(f"wrote {path}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from keras_compress.search.command import check_args, run_command

    check_args(args)  # bad arguments fail here, before TensorFlow is imported
    _import_tensorflow_quietly(args.verbose)
    return run_command(args, _progress(args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``main`` runs it)."""
    p = argparse.ArgumentParser(
        prog="keras-compress",
        description="Prune, distil and quantization-aware-train Keras 3 models; convert them to TFLite; check and run them.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="more output (TensorFlow logs, converter logs)")
    sub = p.add_subparsers(dest="command", required=True, metavar="{demo,convert,run,search,report}")

    c = sub.add_parser("demo", help="the bundled demo recipe: train, compress, convert, check and run on digits; print the table")
    c.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    c.add_argument("--epochs", type=int, default=12, help="baseline training epochs; the other stages scale with it (default 12)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_cmd_demo)

    c = sub.add_parser("convert", help="convert a .keras model to .tflite")
    c.add_argument("model", help="input .keras file")
    c.add_argument("output", help="output .tflite file (written atomically)")
    c.add_argument("--mode", default="int8", choices=["float32", "float16", "dynamic", "int8", "int16x8", "int4_weights", "int4_int8"])
    c.add_argument("--data", default=None, help="calibration inputs: a .npy file, or a dataset name (digits, shapes, a folder)")
    c.add_argument("--samples", type=int, default=100, help="calibration samples (default 100)")
    c.add_argument("--input-type", default=None, choices=["int8", "uint8", "int16", "float32"])
    c.add_argument("--output-type", default=None, choices=["int8", "uint8", "int16", "float32"])
    c.add_argument("--target", default=None, choices=["cpu", "edgetpu"])
    c.set_defaults(func=_cmd_convert)

    c = sub.add_parser("run", help="run a recipe (YAML or JSON file, or a bundled name) end to end")
    c.add_argument("recipe")
    c.add_argument("--out", default=None, help="output folder (default: the recipe's output_dir, else runs/<name>)")
    c.set_defaults(func=_cmd_run)

    from keras_compress.search.command import add_parser

    add_parser(sub).set_defaults(func=_cmd_search)

    c = sub.add_parser("report", help="write an HTML report from a demo or recipe output folder")
    c.add_argument("dir")
    c.add_argument("-o", "--output", default=None, help="HTML file (default: DIR/report.html)")
    c.set_defaults(func=_cmd_report)
    return p


def _run(args: argparse.Namespace) -> int:
    from edgetpu.errors import EdgeTPUError
    from keras_compress.errors import CompressError

    try:
        status = int(args.func(args))
        args.interrupts.check()
        return status
    except (CompressError, EdgeTPUError) as e:
        message = " ".join(str(e).split())
        print(f"keras-compress {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-compress {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # A Ctrl-C that lands inside TensorFlow's C++ can come back as another exception (pybind11:
        # "MISMATCH of original and normalized active exception types ... KeyboardInterrupt"): it is the interrupt.
        if args.interrupts.seen:
            print(f"keras-compress {args.command}: interrupted", file=sys.stderr)
            return 130
        raise


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 on bad input, 130 on Ctrl-C)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    with _Interrupts() as interrupts:
        args.interrupts = interrupts
        try:
            status = _run(args)
        except KeyboardInterrupt:  # a second Ctrl-C while the first was being reported
            status = 130
    if interrupts.seen and status != 130:
        print(f"keras-compress {args.command}: interrupted", file=sys.stderr)
        status = 130
    return status


if __name__ == "__main__":
    sys.exit(main())
