"""`keras-compress report DIR`: one self-contained HTML page from a demo or recipe output folder.

The page holds the summary table, accuracy against size and against latency
(Pareto front marked), per-layer weight sparsity, per-layer quantization error
against float32 (SQNR; for the models below int8, int4 weights or int16
activations, also a table per model: layer, SQNR, weight and activation
types) and the predicted Edge TPU op mapping. Images are embedded as
base64 PNG and there is no script, stylesheet or font to fetch: the file opens
offline. Inputs that are missing (a ``.tflite`` file, the float32 reference,
latency figures) leave a note on the page instead of failing the report.

Example:
    >>> from keras_compress.report import write_report
    >>> write_report("demo_out")                    # doctest: +SKIP
    PosixPath('demo_out/report.html')

Modules: ``analysis`` (Pareto front, sparsity, SQNR), ``plots`` (matplotlib
figures), ``html`` (the page).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

from keras_compress.errors import ReportError

__all__ = ["write_report", "ReportError", "collect"]

log = logging.getLogger("keras_compress")

#: Modes below int8 (or with 16-bit activations): each gets a per-layer table (layer, error, bits) on the page.
LOW_BIT_MODES = ("int16x8", "int4_weights", "int4_int8")

#: Modes whose per-layer error against float32 is measured.
QUANTIZED_MODES = ("int8", *LOW_BIT_MODES)


def _load_rows(folder: Path) -> list[dict]:
    if not folder.exists():
        raise ReportError(f"{folder}: no such folder (expected a demo or recipe output folder with summary.json)")
    if not folder.is_dir():
        raise ReportError(f"{folder}: is a file, expected a demo or recipe output folder with summary.json")
    path = folder / "summary.json"
    if not path.is_file():
        raise ReportError(
            f"{folder}: no summary.json found (expected the output of `keras-compress demo` or `keras-compress run`)"
        )
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not readable JSON: {e}") from None
    if isinstance(rows, dict) and isinstance(rows.get("rows"), list):
        rows = rows["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ReportError(f"{path}: expected a list of rows (objects with 'variant', 'accuracy', ...), found {type(rows).__name__}")
    if not rows:
        raise ReportError(f"{path}: holds no rows; nothing to report")
    for i, r in enumerate(rows):
        r.setdefault("variant", f"row {i}")
    return rows


def _model_path(folder: Path, row: dict) -> Path | None:
    name = row.get("file") or f"{row['variant']}.tflite"
    p = folder / name
    return p if p.is_file() and p.suffix == ".tflite" else None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _float_reference(rows: list[dict], models: dict[str, Path], variant: str) -> str | None:
    """The float32 row that best matches ``variant`` (longest shared name prefix), among those with a file."""
    cands = [r["label"] for r in rows if r.get("mode") == "float32" and r["label"] in models]
    if not cands:
        return None
    stem = re.sub(r"(_?(int8|ptq|qat|int16x8|int4|weights))+$", "", variant.split(" (")[0])

    def score(c: str) -> tuple[int, int]:
        common = len(os.path.commonprefix([stem, c]))
        return (common, -cands.index(c))
    best = max(cands, key=score)
    return best if score(best)[0] > 0 else ("float32" if "float32" in cands else cands[0])


def _label_rows(rows: list[dict]) -> None:
    """Give every row a unique ``label``: its variant, with the mode where a variant has several rows."""
    names = [r["variant"] for r in rows]
    for r in rows:
        r["label"] = r["variant"] if names.count(r["variant"]) == 1 else f"{r['variant']} ({r.get('mode', '?')})"


def _read_run(folder: Path, notes: list[str]) -> dict | None:
    if not (folder / "run.json").is_file():
        notes.append("run.json is missing: the machine description and run time are left out.")
        return None
    try:
        return json.loads((folder / "run.json").read_text())
    except (OSError, ValueError) as e:
        notes.append(f"run.json is not readable ({e}); machine description left out.")
        return None


def _models(folder: Path, rows: list[dict], notes: list[str]) -> dict[str, Path]:
    models: dict[str, Path] = {}
    for r in rows:
        p = _model_path(folder, r)
        if p is None:
            notes.append(f"{r['label']}: model file {r.get('file') or r['variant'] + '.tflite'} not found; "
                         "its sparsity, int8 error and Edge TPU mapping are left out.")
        else:
            models[r["label"]] = p
    return models


def _each(models: dict[str, Path], labels, what: str, fn, notes: list[str]) -> dict:
    """``{label: fn(label, path)}``; a failure becomes a note (one bad file must not lose the whole page)."""
    out = {}
    for v in labels:
        try:
            out[v] = fn(v, models[v])
        except Exception as e:  # noqa: BLE001 - reported on the page as a note, with its type and message
            notes.append(f"{v}: {what} failed: {type(e).__name__}: {e}")
    return out


def _sqnr(folder: Path, rows: list[dict], models: dict[str, Path], samples: int, notes: list[str]) -> tuple[dict, str | None]:
    from edgetpu.model import read_model
    from keras_compress.report.analysis import layer_sqnr, sample_inputs

    if not any(r.get("mode") in QUANTIZED_MODES for r in rows):
        notes.append("no int8 variant in summary.json: no per-layer int8 error and no Edge TPU mapping.")
    refs = {}
    for r in rows:
        if r.get("mode") in QUANTIZED_MODES and r["label"] in models:
            refs[r["label"]] = _float_reference(rows, models, r["label"])
            if refs[r["label"]] is None:
                notes.append(f"{r['label']}: no float32 .tflite in the folder to compare against; per-layer error left out.")
    refs = {v: ref for v, ref in refs.items() if ref is not None}
    inputs: dict[str, Any] = {}

    def one(v: str, path: Path) -> dict:
        if not inputs:
            t = read_model(models[refs[v]]).subgraphs[0]
            inputs["x"], inputs["what"] = sample_inputs(folder, t.tensors[t.inputs[0]].shape, samples)
        return {"reference": refs[v], "layers": layer_sqnr(models[refs[v]], path, inputs["x"])}

    return _each(models, list(refs), "per-layer error against float32", one, notes), inputs.get("what")


def collect(folder: str | os.PathLike, *, sqnr_samples: int = 32) -> dict:
    """Everything the page shows, as plain data (also written as ``report.json`` beside the page).

    Rows are keyed by ``label``: the variant name, with the mode added where
    a variant has several rows (a recipe's float32 and int8 of one model).

    Returns:
        ``{"rows", "run", "models", "sparsity", "sqnr", "sqnr_inputs", "edgetpu", "notes"}``.
    """
    from edgetpu.compat import check
    from keras_compress.report.analysis import weight_sparsity

    folder = Path(folder)
    rows = _load_rows(folder)
    _label_rows(rows)
    notes: list[str] = []
    run = _read_run(folder, notes)
    models = _models(folder, rows, notes)
    sparsity = _each(models, list(models), "reading the weights", lambda v, p: weight_sparsity(p), notes)
    sqnr, sqnr_inputs = _sqnr(folder, rows, models, sqnr_samples, notes)
    int8 = [r["label"] for r in rows if r.get("mode") == "int8" and r["label"] in models]
    edgetpu_results = _each(models, int8, "edgetpu.check", lambda v, p: check(p).to_dict(), notes)
    for key, what in (("latency_ms", "accuracy vs latency"), ("size_bytes", "accuracy vs size")):
        missing = [r["label"] for r in rows if _number(r.get(key)) is None or _number(r.get("accuracy")) is None]
        if missing:
            notes.append(f"{', '.join(missing)}: no {key} or accuracy; left out of the {what} plot.")
    return {
        "folder": str(folder),
        "rows": rows,
        "run": run,
        "models": {v: str(p.relative_to(folder)) for v, p in models.items()},
        "sparsity": sparsity,
        "sqnr": sqnr,
        "sqnr_inputs": sqnr_inputs,
        "edgetpu": edgetpu_results,
        "notes": notes,
    }


def write_report(dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Write the HTML report of a demo or recipe output folder.

    Args:
        dir: the folder (holds ``summary.json``; ``run.json`` and the
            ``.tflite`` files named in the rows are used when present).
        output: the HTML file; default ``dir/report.html``. Written
            atomically; a ``report.json`` with the page's data goes beside it.

    Returns:
        The path of the HTML file.

    Raises:
        ReportError: the folder is missing, or has no readable ``summary.json``.
    """
    from edgetpu import atomic_write_bytes
    from keras_compress.report.html import render

    folder = Path(dir)
    data = collect(folder)
    out = Path(output) if output is not None else folder / "report.html"
    if out.exists() and out.is_dir():
        raise ReportError(f"{out}: is a folder, expected an .html file path")
    if not out.parent.exists():
        raise ReportError(f"{out.parent}: no such folder for the report")
    page = render(data)
    atomic_write_bytes(out, page.encode("utf-8"))
    atomic_write_bytes(out.with_suffix(".json"), json.dumps(_finite(data), indent=2, default=_json_default).encode())
    return out


def _finite(o: Any) -> Any:
    """Strict JSON: infinite or NaN floats (an exact layer has infinite SQNR) become strings."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o: Any):
    if isinstance(o, Path):
        return str(o)
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)
