"""`keras-compress`: the training-side command line.

    keras-compress demo [--out DIR] [--epochs N]
    keras-compress convert MODEL.keras OUT.tflite [--mode int8] [--data digits|shapes|X.npy] [--target edgetpu]
    keras-compress run RECIPE.yaml [--out DIR]
    keras-compress report DIR

Bad input prints one line to stderr (no traceback) and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter out of the demo's output (before TF is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _cmd_demo(args: argparse.Namespace) -> int:
    from keras_compress.demo import run_demo

    run_demo(args.out, epochs=args.epochs, seed=args.seed, verbose=1 if args.verbose else 0)
    return 0


def _calibration_data(spec: str | None, model):
    import numpy as np

    from keras_compress.errors import CalibrationDataError

    if spec is None:
        return None
    p = Path(spec)
    if p.suffix == ".npy":
        if not p.is_file():
            raise CalibrationDataError(f"{p}: no such file (expected a .npy array of calibration inputs)")
        return np.load(p, allow_pickle=False)
    from keras_compress.datasets import load_dataset

    (x, _), _ = load_dataset(spec)
    return x


def _cmd_convert(args: argparse.Namespace) -> int:
    import keras

    from keras_compress.convert import to_tflite
    from keras_compress.errors import CompressError

    src, dst = Path(args.model), Path(args.output)
    if not src.is_file():
        raise CompressError(f"{src}: no such file (expected a saved Keras model, .keras)")
    if src.suffix != ".keras":
        raise CompressError(f"{src}: expected a .keras model file, found suffix {src.suffix or '(none)'!r}")
    if dst.suffix != ".tflite":
        raise CompressError(f"{dst}: the output must end in .tflite")
    if dst.resolve() == src.resolve():
        raise CompressError(f"{dst}: refusing to overwrite the input model")
    try:
        model = keras.saving.load_model(src, compile=False)
    except Exception as e:  # noqa: BLE001 - loading fails in many ways; report it as bad input
        raise CompressError(f"{src}: could not load the Keras model: {type(e).__name__}: {e}") from None
    data = to_tflite(
        model,
        dst,
        quantization=args.mode,
        representative_data=_calibration_data(args.data, model),
        num_calibration_samples=args.samples,
        input_type=args.input_type,
        output_type=args.output_type,
        target=args.target,
    )
    print(f"wrote {dst} ({len(data):,} bytes, {args.mode})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from keras_compress.recipes import run_recipe

    run_recipe(args.recipe, out_dir=args.out)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from keras_compress.report import write_report

    path = write_report(args.dir, args.output)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="keras-compress",
        description="Prune, distil and quantization-aware-train Keras 3 models; convert them to TFLite; check and run them.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="more output (Keras progress bars, converter logs)")
    sub = p.add_subparsers(dest="command", required=True, metavar="{demo,convert,run,report}")

    c = sub.add_parser("demo", help="train, compress, convert, check and run on built-in digits; print the table")
    c.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    c.add_argument("--epochs", type=int, default=12, help="baseline training epochs (default 12)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_cmd_demo)

    c = sub.add_parser("convert", help="convert a .keras model to .tflite")
    c.add_argument("model", help="input .keras file")
    c.add_argument("output", help="output .tflite file (written atomically)")
    c.add_argument("--mode", default="int8", choices=["float32", "float16", "dynamic", "int8", "int16x8"])
    c.add_argument("--data", default=None, help="calibration inputs: a .npy file, or a dataset name (digits, shapes, a folder)")
    c.add_argument("--samples", type=int, default=100, help="calibration samples (default 100)")
    c.add_argument("--input-type", default=None, choices=["int8", "uint8", "int16", "float32"])
    c.add_argument("--output-type", default=None, choices=["int8", "uint8", "int16", "float32"])
    c.add_argument("--target", default=None, choices=["cpu", "edgetpu"])
    c.set_defaults(func=_cmd_convert)

    c = sub.add_parser("run", help="run a recipe (YAML or JSON) end to end")
    c.add_argument("recipe")
    c.add_argument("--out", default=None, help="output folder (default: the recipe's)")
    c.set_defaults(func=_cmd_run)

    c = sub.add_parser("report", help="write an HTML report from a demo or recipe output folder")
    c.add_argument("dir")
    c.add_argument("-o", "--output", default=None, help="HTML file (default: DIR/report.html)")
    c.set_defaults(func=_cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    from edgetpu.errors import EdgeTPUError
    from keras_compress.errors import CompressError

    try:
        return int(args.func(args))
    except (CompressError, EdgeTPUError) as e:
        print(f"keras-compress {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-compress {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
