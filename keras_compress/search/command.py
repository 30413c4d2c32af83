"""``keras-compress search``: the command line of :func:`keras_compress.search.search`.

    keras-compress search MODEL.keras --data digits --budget size=25% [--budget latency=0.5x]
                          [--target cpu|edgetpu] [--methods filters,sparsity,lowrank,clusters]
                          [--epochs 6] [--threads 1] [--no-uniform] --out DIR

Arguments are checked (the model file, the budgets, the methods, the output
folder) before TensorFlow is imported; bad ones exit 2 with one line. The
output folder keeps the sensitivity cache: run the same command again after
Ctrl-C and the analysis resumes where it stopped.

Example:
    >>> import argparse
    >>> from keras_compress.search.command import add_parser
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> args = add_parser(sub).parse_args(["m.keras", "--data", "digits", "--budget", "size=25%", "--out", "o"])
    >>> args.budget, args.methods, args.target
    (['size=25%'], 'filters,sparsity,lowrank,clusters', 'cpu')
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_compress.search.plan import METHODS
from keras_compress.search.space import DEFAULT_METHODS

__all__ = ["add_parser", "run_command", "check_args"]


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the ``search`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    c = sub.add_parser("search", help="search per-layer compression under a budget; fine-tune, convert and measure")
    c.add_argument("model", help="the trained model (.keras)")
    c.add_argument("--data", required=True, help="dataset: digits, shapes, a keras.datasets name, or a folder of images")
    c.add_argument("--budget", action="append", required=True,
                   help="METRIC=VALUE, repeatable: size=64KB|25%%, gzip=1/12, macs=50%%, latency=0.5x|0.3ms, accuracy=-1pt|0.97")
    c.add_argument("--target", default="cpu", choices=["cpu", "edgetpu"])
    c.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated: filters, sparsity, lowrank, clusters (the default), bits (4-bit weights, CPU only)")
    c.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs per plan (default 6)")
    c.add_argument("--threads", type=int, default=1, help="CPU threads of every latency measurement (default 1)")
    c.add_argument("--no-uniform", action="store_true", help="skip the uniform baseline")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, help="output folder (plan.json, model.keras, model.tflite, summary.json, report.html)")
    return c


def check_args(args: argparse.Namespace):
    """``(budgets, methods)`` if the arguments are usable; else a :class:`ConfigError` / :class:`OutputError`."""
    from keras_compress.errors import ConfigError, OutputError
    from keras_compress.search.budget import parse_budgets

    src, out = Path(args.model), Path(args.out)
    if src.suffix != ".keras":
        raise ConfigError(f"{src}: expected a .keras model file")
    if not src.is_file():
        raise ConfigError(f"{src}: no such file")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if (out / "model.keras").resolve() == src.resolve():
        raise OutputError(f"{out}: would overwrite the input model {src}; choose another --out")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"--methods {args.methods!r}: expected some of {', '.join(METHODS)}")
    for flag, value in (("--epochs", args.epochs), ("--threads", args.threads)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: expected an integer >= 1")
    return parse_budgets(args.budget), methods


def run_command(args: argparse.Namespace, progress) -> int:
    """Run the search the arguments describe; prints where the outputs went."""
    import keras

    from keras_compress.datasets import load_dataset
    from keras_compress.errors import CompressError
    from keras_compress.search.search import search

    budgets, methods = check_args(args)
    data = load_dataset(args.data)
    try:
        model = keras.saving.load_model(args.model, compile=False)
    except Exception as e:  # noqa: BLE001 - loading fails in many ways; report it as bad input
        raise CompressError(f"{args.model}: could not load the Keras model: {type(e).__name__}: {e}") from None
    search(model, data, budget=budgets, target=args.target, methods=methods, fine_tune_epochs=args.epochs,
           out_dir=args.out, num_threads=args.threads, compare_uniform=not args.no_uniform, seed=args.seed,
           progress=progress)
    print(f"wrote {args.out}/plan.json, model.keras, model.tflite, summary.json, report.html")
    return 0
