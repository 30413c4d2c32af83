"""Running the converter in a separate process, where a crash is reported instead of inherited.

TF's converter can end the process with a signal (TF 2.21: int8 / int16x8
calibration of recurrent layers, whose WHILE loop its calibrator crashes on).
:func:`convert_isolated` saves the model as ``.keras`` and the calibration
samples as ``.npz`` in a private temp folder, runs
``python -m keras_compress.convert.worker FOLDER`` (a new session, so a
terminal's Ctrl-C reaches only this process, which then stops the worker), and
turns the worker's outcome into bytes, the worker's own error, or a
:class:`~keras_compress.errors.ConversionError` naming the signal, the model
and the layers likely responsible. The worker's ``TMPDIR`` is inside that
folder, so whatever TF leaves there is removed with it on every path.

The cost is a fresh interpreter importing TensorFlow and loading the model
(several seconds; bench/bench_convert.py measures it), so only conversions
known to crash take this route by default.

Example:
    >>> import keras
    >>> from keras_compress.convert.isolation import importable_modules
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> importable_modules(m)
    []
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from keras_compress import errors
from keras_compress.convert.layers import walk_layers
from keras_compress.convert.options import ConversionOptions
from keras_compress.errors import ConversionError

__all__ = ["convert_isolated", "importable_modules"]

log = logging.getLogger("keras_compress")


def importable_modules(model) -> list[str]:
    """Modules (outside Keras) defining the model's layer classes, which the worker must import to load it.

    Raises:
        ConversionError: a class defined in ``__main__``, which another process cannot import.
    """
    classes = {type(layer) for layer in [model, *walk_layers(model)]}
    in_main = sorted(c.__name__ for c in classes if c.__module__ == "__main__")
    if in_main:
        raise ConversionError(
            f"model {model.name!r}: converting it in a separate process needs its layer classes importable there, "
            f"but {', '.join(in_main)} {'is' if len(in_main) == 1 else 'are'} defined in __main__: move them to a module "
            "(registered with keras.saving.register_keras_serializable), or pass isolate=False to convert in this "
            "process at the risk of a crash"
        )
    return sorted({c.__module__ for c in classes if c.__module__.split(".")[0] != "keras"})


def _write_job(folder: Path, model, opts: ConversionOptions, samples) -> None:
    modules = importable_modules(model)
    try:
        model.save(folder / "model.keras")
    except Exception as e:  # noqa: BLE001 - saving fails in many ways; all mean the same here
        raise ConversionError(
            f"model {model.name!r}: converting it in a separate process needs it saved as .keras, which failed "
            f"({type(e).__name__}: {e}); pass isolate=False to convert in this process at the risk of a crash"
        ) from None
    if samples is not None:
        arrays = {f"input_{i}": np.concatenate([s[i] for s in samples]) for i in range(len(samples[0]))}
        np.savez(folder / "calibration.npz", **arrays)
    (folder / "job.json").write_text(json.dumps({"options": opts.to_dict(), "modules": modules}))


def _worker_env(folder: Path) -> dict:
    env = dict(os.environ)
    paths = [p or os.getcwd() for p in sys.path]  # what this process imports from, '' being the cwd
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    tmp = folder / "tmp"
    tmp.mkdir()
    env["TMPDIR"] = str(tmp)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _run_worker(folder: Path) -> int:
    cmd = [sys.executable, "-m", "keras_compress.convert.worker", str(folder)]
    with open(folder / "worker.log", "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=_worker_env(folder), start_new_session=True)
        try:
            return proc.wait()
        except BaseException:  # Ctrl-C (or anything else) in this process: stop the worker, then go on
            proc.kill()
            proc.wait()
            raise


def _crash_message(rc: int, model, opts: ConversionOptions, risks, folder: Path) -> str:
    how = f"signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"exit status {rc}"
    if risks:
        cause = "; ".join(f"layer {layer.name!r} ({type(layer).__name__}): {text}" for layer, text in risks)
    else:
        tail = (folder / "worker.log").read_text(errors="replace").strip().splitlines()[-3:]
        cause = "no known cause; the converter's last output: " + " | ".join(tail)
    return (f"converting model {model.name!r} to TFLite ({opts.mode.value}) crashed TF's converter ({how}) in a "
            f"separate process; nothing was written. Likely cause: {cause}")


def convert_isolated(model, opts: ConversionOptions, samples, risks=()) -> bytes:
    """Convert ``model`` in a separate process; a crash there is a ConversionError here.

    ``risks``: ``[(layer, text)]`` of what makes this conversion crash-prone,
    named in the error if the worker dies.
    """
    with tempfile.TemporaryDirectory(prefix="kc_isolated_") as tmp:
        folder = Path(tmp)
        _write_job(folder, model, opts, samples)
        log.info("%s: converting in a separate process (%s)", model.name,
                 ", ".join(f"{layer.name} ({type(layer).__name__})" for layer, _ in risks) or "isolate=True")
        rc = _run_worker(folder)
        if rc == 0 and (folder / "model.tflite").is_file():
            return (folder / "model.tflite").read_bytes()
        if (folder / "error.json").is_file():
            err = json.loads((folder / "error.json").read_text())
            cls = getattr(errors, err["type"], ConversionError)
            raise cls(err["message"])
        raise ConversionError(_crash_message(rc, model, opts, risks, folder))
