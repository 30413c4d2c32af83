"""The separate converter process: ``python -m keras_compress.convert.worker FOLDER``.

Reads ``FOLDER/job.json`` (options and the modules defining the model's layer
classes), ``FOLDER/model.keras`` and ``FOLDER/calibration.npz``, converts in
this process and writes ``FOLDER/model.tflite``, or ``FOLDER/error.json``
(``{"type", "message"}``) for an error it could report. A crash of the
converter leaves neither; :mod:`keras_compress.convert.isolation` reports it.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _load(folder: Path):
    import keras
    import numpy as np

    from keras_compress.convert.options import ConversionOptions
    from keras_compress.errors import ConversionError

    job = json.loads((folder / "job.json").read_text())
    for name in job["modules"]:
        importlib.import_module(name)  # registers the model's custom layer classes
    try:  # the file was written by the calling process a moment ago, so Lambda layers may be deserialized
        model = keras.saving.load_model(folder / "model.keras", compile=False, safe_mode=False)
    except Exception as e:  # noqa: BLE001 - loading fails in many ways; all mean the same here
        raise ConversionError(
            f"the separate converter process could not load the model saved as .keras ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0]}); make it load with keras.saving.load_model, or pass isolate=False "
            "to convert in the calling process at the risk of a crash"
        ) from None
    samples = None
    if (folder / "calibration.npz").is_file():
        with np.load(folder / "calibration.npz") as npz:
            arrays = [npz[f"input_{i}"] for i in range(len(npz.files))]
        samples = [[a[j : j + 1] for a in arrays] for j in range(len(arrays[0]))]
    return model, ConversionOptions.from_dict(job["options"]), samples


def main(argv: list[str] | None = None) -> int:
    """Run one conversion job; 0 with ``model.tflite`` written, 1 with ``error.json`` written."""
    from keras_compress.errors import CompressError

    folder = Path((sys.argv[1:] if argv is None else argv)[0])
    try:
        model, opts, samples = _load(folder)
        from keras_compress.convert.converter import convert_in_process

        data = convert_in_process(model, opts, samples)
    except CompressError as e:
        error = {"type": type(e).__name__, "message": str(e)}
    except Exception as e:  # noqa: BLE001 - reported to the calling process as a ConversionError
        error = {"type": "ConversionError", "message": f"the separate converter process failed: {type(e).__name__}: {e}"}
    else:
        (folder / "model.tflite").write_bytes(data)
        return 0
    (folder / "error.json").write_text(json.dumps(error))
    return 1


if __name__ == "__main__":
    sys.exit(main())
