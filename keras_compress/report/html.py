"""The report page: plain HTML and inline CSS, images as base64 PNG, nothing fetched from anywhere."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import re
from typing import Any

from keras_compress.machine import describe
from keras_compress.report import plots

__all__ = ["render", "summary_table"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; background: #fff; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
td.left { text-align: left; } .muted { color: #666; font-size: 13px; }
.notes { background: #fff8e1; border: 1px solid #f0d58c; padding: 8px 14px; font-size: 13px; }
figure.plot { margin: 12px 0; } figure.plot img { display: block; max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; margin-top: 4px; }
tr.cpu td { background: #fdecea; } tr.boundary td { color: #777; }
"""

# (key, header, formatter) of the summary table's known columns; other scalar keys follow.
_SIZE = "size"


def _fmt_size(v: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(v)


_KNOWN = (
    ("variant", "variant", str),
    ("mode", "mode", str),
    ("accuracy", "accuracy", lambda v: f"{v:.2%}"),
    ("size_bytes", "size", _fmt_size),
    ("gzip_bytes", "gzip", _fmt_size),
    ("latency_ms", "latency median", lambda v: f"{v:.3f} ms"),
    ("latency_p90_ms", "latency p90", lambda v: f"{v:.3f} ms"),
    ("num_threads", "threads", str),
    ("sparsity", "sparsity", lambda v: f"{v:.0%}"),
    ("edgetpu_mapped", "TPU ops (pred.)", lambda v: f"{v:.0%}"),
    ("edgetpu_compiled", "TPU compile", str),
    ("file", "file", str),
)


def _cell(v: Any, fmt) -> str:
    if v is None:
        return "-"
    try:
        return html.escape(fmt(v))
    except (TypeError, ValueError):
        return html.escape(str(v))


def summary_table(rows: list[dict]) -> str:
    """The rows as an HTML table: known columns first (formatted), then any other scalar key."""
    known = [c for c in _KNOWN if any(c[0] in r for r in rows)]
    names = {c[0] for c in _KNOWN} | {"label"}
    extra = []
    for r in rows:
        for k, v in r.items():
            if k not in names and k not in extra and (v is None or isinstance(v, (str, int, float, bool))):
                extra.append(k)
    cols = known + [(k, k, lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)) for k in extra]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(k), f)}</td>" for k, _, f in cols) + "</tr>" for r in rows)
    return f"<table id='summary'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, ident: str, alt: str, caption: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return (f"<figure class='plot'><img id='{ident}' class='plot-img' alt='{html.escape(alt)}' "
            f"src='data:image/png;base64,{b64}'><figcaption>{caption}</figcaption></figure>")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(float(v)):
        return None
    return float(v)


def _tradeoff_sections(rows: list[dict], out: list[str]) -> None:
    sized = [r for r in rows if _num(r.get("accuracy")) is not None and _num(r.get("size_bytes")) is not None]
    if sized:
        panels = [("file size (KiB)", [r.get("label", r["variant"]) for r in sized], [r["size_bytes"] / 1024 for r in sized],
                   [r["accuracy"] for r in sized], True)]
        zipped = [r for r in sized if _num(r.get("gzip_bytes")) is not None]
        if zipped:
            panels.append(("gzip size (KiB)", [r.get("label", r["variant"]) for r in zipped], [r["gzip_bytes"] / 1024 for r in zipped],
                           [r["accuracy"] for r in zipped], True))
        out.append(_img(plots.tradeoff_plot(panels, "Accuracy vs model size"), "plot-size", "accuracy vs size",
                        "Each point is a variant; outlined points with the dashed magenta line form the Pareto front "
                        "(no other variant is both smaller and more accurate)."))
    else:
        out.append("<p class='muted'>No row has both accuracy and size_bytes: no size plot.</p>")
    timed = [r for r in rows if _num(r.get("accuracy")) is not None and _num(r.get("latency_ms")) is not None]
    if timed:
        threads = sorted({str(r.get("num_threads", "?")) for r in timed})
        panels = [(f"median latency (ms, {', '.join(threads)} thread(s))", [r.get("label", r["variant"]) for r in timed],
                   [r["latency_ms"] for r in timed], [r["accuracy"] for r in timed], False)]
        out.append(_img(plots.tradeoff_plot(panels, "Accuracy vs latency (CPU, XNNPACK)"), "plot-latency",
                        "accuracy vs latency", "Median invoke latency measured by the demo through edgetpu.benchmark; "
                        "the Pareto front is dashed magenta."))
    else:
        out.append("<p class='muted'>No row has both accuracy and latency_ms: no latency plot.</p>")


def _sparsity_section(data: dict, out: list[str]) -> None:
    out.append("<h2>Per-layer sparsity</h2>")
    sp = {v: recs for v, recs in data["sparsity"].items() if recs}
    if not sp:
        out.append("<p class='muted'>No .tflite model with weights was found: no sparsity plot.</p>")
        return
    sparse = {v: recs for v, recs in sp.items() if max(r["sparsity"] for r in recs) >= 0.05}
    shown = dict(sparse)
    ref = next((v for v in sp if v not in shown), None)
    if ref is not None:
        shown = {ref: sp[ref], **shown}
    shown = dict(list(shown.items())[:8])
    out.append(_img(plots.sparsity_plot(shown), "plot-sparsity", "per-layer sparsity",
                    "Fraction of weights that are exactly zero in each conv / depthwise / dense op of the .tflite "
                    "(a quantized weight equal to its zero point counts as zero)."
                    + ("" if sparse else " No variant has a layer with 5% or more zeros: the plot shows "
                       f"{html.escape(ref or '')} for reference.")))
    head = "".join(f"<th>{html.escape(v)}</th>" for v in sp)
    layers: list[str] = []
    for recs in sp.values():
        for r in recs:
            if r["layer"] not in layers:
                layers.append(r["layer"])
    body = ""
    for layer in layers:
        cells = ""
        for recs in sp.values():
            vals = [r for r in recs if r["layer"] == layer]
            cells += f"<td>{vals[0]['sparsity']:.1%} ({_values(vals[0])})</td>" if vals else "<td>-</td>"
        body += f"<tr><td>{html.escape(layer)}</td>{cells}</tr>"
    out.append(f"<details><summary>Table: sparsity (distinct weight values)</summary><table><tr><th>layer</th>{head}</tr>"
               f"{body}</table></details>")


def _values(record: dict) -> str:
    """Distinct weight values of a layer (clustering leaves a few), or its weight count when unknown."""
    return f"{record['unique']} values" if "unique" in record else f"{record['weights']} weights"


def _sqnr_section(data: dict, out: list[str]) -> None:
    out.append("<h2>Per-layer quantization error against float32</h2>")
    series = {v: d["layers"] for v, d in data["sqnr"].items() if d["layers"]}
    if not series:
        out.append("<p class='muted'>No quantized variant could be compared with a float32 model: no SQNR plot.</p>")
        return
    refs = ", ".join(f"{html.escape(v)} against {html.escape(d['reference'])}" for v, d in data["sqnr"].items())
    out.append(_img(plots.sqnr_plot(series), "plot-sqnr", "per-layer SQNR",
                    f"Method: the float32 and the quantized .tflite run the same inputs "
                    f"({html.escape(data.get('sqnr_inputs') or '?')}) in the TFLite interpreter with "
                    "experimental_preserve_all_tensors=True; every op output of the quantized model is dequantized and "
                    "matched to the float tensor of the same name (else the same op type at the same position). "
                    "SQNR = 10 log10(&Sigma;ref&sup2; / &Sigma;(ref &minus; q)&sup2;), cumulative along the graph. "
                    f"Pairs: {refs}. A variant whose weights differ from its reference (pruned, distilled, "
                    "quantization-aware trained) shows that change as well as the rounding."))
    _lowbit_tables(data, out)


def _lowbit_tables(data: dict, out: list[str]) -> None:
    """One compact table per model below int8 (int4 weights, int16 activations): layer, SQNR, weight / activation types."""
    from keras_compress.report import LOW_BIT_MODES
    from keras_compress.report.analysis import layer_table

    modes = {r.get("label", r["variant"]): r.get("mode") for r in data["rows"]}
    for v, d in data["sqnr"].items():
        if modes.get(v) not in LOW_BIT_MODES or not d["layers"]:
            continue
        body = "".join(f"<tr><td>{html.escape(r['layer'])}</td><td>{_cell(r['sqnr_db'], lambda x: f'{x:.1f} dB')}</td>"
                       f"<td>{html.escape(r['weights'] or '-')}</td><td>{html.escape(str(r['activations']))}</td></tr>"
                       for r in layer_table(d["layers"]))
        ident = re.sub(r"[^A-Za-z0-9_-]+", "-", v)
        out.append(f"<h3>{html.escape(v)} ({html.escape(str(modes[v]))}): per-layer error and bits</h3>"
                   f"<table class='lowbit' id='lowbit-{ident}'><tr><th>layer</th><th>SQNR at its output "
                   f"(vs {html.escape(d['reference'])})</th><th>weights</th><th>activations</th></tr>{body}</table>")


def _edgetpu_section(data: dict, out: list[str]) -> None:
    out.append("<h2>Edge TPU op mapping</h2>")
    res = data["edgetpu"]
    if not res:
        out.append("<p class='muted'>No int8 .tflite model in the folder: no Edge TPU mapping.</p>")
        return
    strips = {}
    for v, r in res.items():
        strips[v] = [(o["op"], "boundary" if o.get("boundary") else ("tpu" if o["mapped"] else "cpu")) for o in r["ops"]]
    out.append(_img(plots.edgetpu_plot(strips), "plot-edgetpu", "Edge TPU op mapping",
                    "Predicted by edgetpu.check with the rules of edgetpu_compiler 16.0: at the first op that cannot "
                    "map, the compiler cuts the graph once and everything from there runs on the CPU."))
    rows = ""
    for v, r in res.items():
        cut = "none" if r["cut_index"] is None else f"op {r['cut_index']} ({html.escape(str(r['cut_op']))})"
        rows += (f"<tr><td>{html.escape(v)}</td><td>{r['fraction_mapped']:.0%}</td><td>{r['ops_on_tpu']}</td>"
                 f"<td>{r['ops_on_cpu']}</td><td class='left'>{cut}</td><td>{_fmt_size(r['parameter_bytes'])}</td>"
                 f"<td>{'yes' if r['fits_on_chip'] else 'no'}</td><td class='left'>{html.escape(r['verdict'])}</td></tr>")
    out.append("<table><tr><th>variant</th><th>mapped</th><th>ops on TPU</th><th>ops on CPU</th><th>cut</th>"
               f"<th>parameters</th><th>fits on chip</th><th>verdict</th></tr>{rows}</table>")
    for v, r in res.items():
        body = ""
        for o in r["ops"]:
            cls = "boundary" if o.get("boundary") else ("" if o["mapped"] else "cpu")
            where = "CPU (boundary)" if o.get("boundary") else ("Edge TPU" if o["mapped"] else "CPU")
            body += (f"<tr class='{cls}'><td>{o['index']}</td><td class='left'>{html.escape(o['op'])}</td>"
                     f"<td>{o['version']}</td><td class='left'>{where}</td>"
                     f"<td class='left'>{html.escape(o.get('reason') or '')}</td></tr>")
        out.append(f"<details><summary>{html.escape(v)}: every op</summary><table><tr><th>#</th><th>op</th>"
                   f"<th>version</th><th>runs on</th><th>reason</th></tr>{body}</table></details>")
        for w in r.get("warnings") or []:
            out.append(f"<p class='muted'>{html.escape(v)}: {html.escape(w)}</p>")


def render(data: dict) -> str:
    """The whole page for the data of :func:`keras_compress.report.collect`."""
    out: list[str] = []
    out.append("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
               "<meta name='viewport' content='width=device-width, initial-scale=1'>"
               f"<title>keras-compress report: {html.escape(data['folder'])}</title><style>{_CSS}</style></head><body>")
    out.append(f"<h1>keras-compress report</h1><p class='muted'>Folder {html.escape(data['folder'])}; written "
               f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.</p>")
    run = data.get("run") or {}
    machine = run.get("machine") or {}
    if machine:
        versions = ", ".join(f"{k} {v}" for k, v in (machine.get("versions") or {}).items() if v)
        out.append(f"<p class='muted' id='machine'>{html.escape(describe(machine))}; Python "
                   f"{html.escape(str(machine.get('python', '?')))}; {html.escape(versions)}. "
                   f"Run time {html.escape(str(run.get('seconds', '?')))} s.</p>")
    if data["notes"]:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in data["notes"])
        out.append(f"<div class='notes'><b>Missing inputs</b> (the rest of the report is complete):<ul>{items}</ul></div>")
    out.append("<h2>Summary</h2>")
    out.append(summary_table(data["rows"]))
    accuracy = run.get("keras_accuracy")
    if isinstance(accuracy, dict) and accuracy:
        parts = ", ".join(f"{html.escape(str(k))} {v:.2%}" for k, v in accuracy.items() if _num(v) is not None)
        out.append(f"<p class='muted'>Keras accuracy of each model before conversion: {parts}.</p>")
    elif _num(accuracy) is not None:
        out.append(f"<p class='muted'>Keras float accuracy of the baseline: {accuracy:.2%}.</p>")
    out.append("<h2>Accuracy vs size and latency</h2>")
    _tradeoff_sections(data["rows"], out)
    _sparsity_section(data, out)
    _sqnr_section(data, out)
    _edgetpu_section(data, out)
    out.append("</body></html>")
    return "\n".join(out)
