"""`keras-compress report DIR`: one self-contained HTML page from a demo or recipe output folder.

The page holds the summary table, accuracy against size and against latency
(Pareto front marked), per-layer weight sparsity, per-layer int8 error against
float32 (SQNR) and the predicted Edge TPU op mapping. Images are embedded as
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

from keras_compress.errors import CompressError

__all__ = ["write_report", "ReportError", "collect"]

log = logging.getLogger("keras_compress")

#: Modes whose per-layer error against float32 is measured.
QUANTIZED_MODES = ("int8", "int16x8")


class ReportError(CompressError, ValueError):
    """The folder cannot make a report (missing folder, no or unreadable summary.json)."""


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
    cands = [r["variant"] for r in rows if r.get("mode") == "float32" and r["variant"] in models]
    if not cands:
        return None
    stem = re.sub(r"(_?(int8|ptq|qat|int16x8))+$", "", variant)
    def score(c: str) -> tuple[int, int]:
        common = len(os.path.commonprefix([stem, c]))
        return (common, -cands.index(c))
    best = max(cands, key=score)
    return best if score(best)[0] > 0 else ("float32" if "float32" in cands else cands[0])


def collect(folder: str | os.PathLike, *, sqnr_samples: int = 32) -> dict:
    """Everything the page shows, as plain data (also written as ``report.json`` beside the page).

    Returns:
        ``{"rows", "run", "models", "sparsity", "sqnr", "sqnr_inputs", "edgetpu", "notes"}``.
    """
    from keras_compress.report.analysis import layer_sqnr, sample_inputs, weight_sparsity

    folder = Path(folder)
    rows = _load_rows(folder)
    notes: list[str] = []
    run = None
    if (folder / "run.json").is_file():
        try:
            run = json.loads((folder / "run.json").read_text())
        except (OSError, ValueError) as e:
            notes.append(f"run.json is not readable ({e}); machine description left out.")
    else:
        notes.append("run.json is missing: the machine description and run time are left out.")

    models: dict[str, Path] = {}
    for r in rows:
        p = _model_path(folder, r)
        if p is None:
            notes.append(f"{r['variant']}: model file {r.get('file') or r['variant'] + '.tflite'} not found; "
                         "its sparsity, int8 error and Edge TPU mapping are left out.")
        else:
            models[r["variant"]] = p

    sparsity: dict[str, list[dict]] = {}
    for v, p in models.items():
        try:
            sparsity[v] = weight_sparsity(p)
        except Exception as e:  # noqa: BLE001 - one bad file must not lose the whole page
            notes.append(f"{v}: could not read weights of {p.name}: {e}")

    sqnr: dict[str, dict] = {}
    sqnr_inputs = None
    quant = [r["variant"] for r in rows if r.get("mode") in QUANTIZED_MODES and r["variant"] in models]
    if not any(r.get("mode") in QUANTIZED_MODES for r in rows):
        notes.append("no int8 variant in summary.json: no per-layer int8 error and no Edge TPU mapping.")
    x = None
    for v in quant:
        ref = _float_reference(rows, models, v)
        if ref is None:
            notes.append(f"{v}: no float32 .tflite in the folder to compare against; per-layer error left out.")
            continue
        try:
            if x is None:
                from edgetpu.model import read_model

                t = read_model(models[ref]).subgraphs[0]
                shape = t.tensors[t.inputs[0]].shape
                x, sqnr_inputs = sample_inputs(folder, shape, sqnr_samples)
            sqnr[v] = {"reference": ref, "layers": layer_sqnr(models[ref], models[v], x)}
        except Exception as e:  # noqa: BLE001
            notes.append(f"{v}: per-layer error against {ref} failed: {type(e).__name__}: {e}")

    edgetpu_results: dict[str, dict] = {}
    for r in rows:
        v = r["variant"]
        if r.get("mode") != "int8" or v not in models:
            continue
        try:
            from edgetpu.compat import check

            edgetpu_results[v] = check(models[v]).to_dict()
        except Exception as e:  # noqa: BLE001
            notes.append(f"{v}: edgetpu.check failed: {type(e).__name__}: {e}")

    for key, what in (("latency_ms", "accuracy vs latency"), ("size_bytes", "accuracy vs size")):
        missing = [r["variant"] for r in rows if _number(r.get(key)) is None or _number(r.get("accuracy")) is None]
        if missing:
            notes.append(f"{', '.join(missing)}: no {key} or accuracy; left out of the {what} plot.")
    return {
        "folder": str(folder),
        "rows": rows,
        "run": run,
        "models": {v: p.name for v, p in models.items()},
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
    from edgetpu._io import atomic_write_bytes
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
