"""``report.html`` of a search: budgets and verdicts, the plans, the measured table and the Pareto front.

One self-contained page (figures inline as PNG), written from ``summary.json``'s
content, so ``keras-compress report`` is not needed to read a search.

Example:
    >>> from keras_compress.search.report import rows_of
    >>> s = {"original": {"measured": {"size": 10, "gzip": 8, "accuracy": 0.9, "latency": 1.0, "macs": 5}},
    ...      "searched": {"measured": {"size": 5, "gzip": 4, "accuracy": 0.89, "latency": 0.5, "macs": 2}},
    ...      "uniform": None, "candidates": []}
    >>> [r["variant"] for r in rows_of(s)]
    ['original', 'searched']
"""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["write_search_report", "rows_of", "render_search", "pareto_figure"]

_CSS = ("body{font-family:Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        ".miss{color:#b00020;font-weight:bold}.ok{color:#1b5e20}.muted{color:#666;font-size:13px}"
        "figure img{max-width:100%;border:1px solid #eee}")


def _row(name: str, m: dict) -> dict:
    return {"variant": name, "accuracy": m.get("accuracy"), "size_bytes": m.get("size"), "gzip_bytes": m.get("gzip"),
            "latency_ms": m.get("latency"), "MACs": m.get("macs")}


def rows_of(summary: dict) -> list[dict]:
    """Table rows: the original, the searched and uniform models, then the one-shot candidates."""
    rows = [_row("original", summary["original"]["measured"])]
    for kind in ("searched", "uniform", "cheaper"):
        if summary.get(kind):
            rows.append(_row(kind, summary[kind]["measured"]))
    rows += [_row(f"path {i + 1} (one-shot)", c["measured"]) for i, c in enumerate(summary.get("candidates", []))]
    return rows


def _verdicts(summary: dict) -> str:
    out = ["<table><tr><th>budget</th><th>limit</th>"]
    kinds = [k for k in ("searched", "uniform") if summary.get(k)]
    out += [f"<th>{k}: measured</th><th>{k}: met</th>" for k in kinds] + ["</tr>"]
    for b in summary["budgets"]:
        m = b["metric"]
        limit = summary["accuracy_floor"] if m == "accuracy" else summary["limits"].get(m)
        cells = [f"<td>{html.escape(b['text'])}<br><span class='muted'>{html.escape(b['meaning'])}</span></td>",
                 f"<td>{limit:,.4g}</td>"]
        for k in kinds:
            ok = summary[k]["met"].get(m)
            cells.append(f"<td>{summary[k]['measured'][m]:,.4g}</td>")
            cells.append(f"<td class='{'ok' if ok else 'miss'}'>{'yes' if ok else 'NO'}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _plan_table(summary: dict) -> str:
    kinds = [k for k in ("searched", "uniform", "cheaper") if summary.get(k)]
    out = ["<table><tr><th>layer</th><th>candidates</th>" + "".join(f"<th>{k}</th>" for k in kinds) + "</tr>"]
    for layer, methods in summary["space"].items():
        cand = ", ".join(methods)
        cells = []
        for k in kinds:
            s = summary[k]["plan"].get(layer, {})
            cells.append("<td>" + html.escape(" ".join(f"{m} {v:g}" for m, v in s.items()) or "-") + "</td>")
        out.append(f"<tr><td>{html.escape(layer)}</td><td>{html.escape(cand)}</td>{''.join(cells)}</tr>")
    return "".join(out) + "</table>"


def pareto_figure(rows: list[dict]) -> str:
    """Accuracy against int8 size and against latency (Pareto front dashed), as an inline ``<figure>``."""
    import base64

    from keras_compress.report.plots import tradeoff_plot

    names = [r["variant"] for r in rows]
    acc = [r["accuracy"] for r in rows]
    panels = [("int8 file size (KiB)", names, [r["size_bytes"] / 1024 for r in rows], acc, False)]
    if all(r.get("latency_ms") for r in rows):
        panels.append(("latency (ms)", names, [r["latency_ms"] for r in rows], acc, False))
    png = base64.b64encode(tradeoff_plot(panels, "measured candidates: accuracy against size and latency")).decode()
    return (f"<figure><img id='pareto' alt='accuracy against size and latency' src='data:image/png;base64,{png}'>"
            "<figcaption>Every model the search measured; the Pareto front dashed, its points outlined.</figcaption></figure>")


def render_search(summary: dict) -> str:
    """The page's HTML."""
    from keras_compress.machine import describe
    from keras_compress.report.html import summary_table

    rows = rows_of(summary)
    s = summary["searched"]
    err = s.get("latency_model_error")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>keras-compress search</title><style>{_CSS}</style></head><body>",
        "<h1>Compression to a budget</h1>",
        f"<p class='muted'>target {html.escape(summary['target'])}, {summary['num_threads']} thread(s); latency "
        f"{html.escape(summary['latency_source'])}; {html.escape(describe(summary['machine']))}</p>",
        "<h2>Budgets</h2>", _verdicts(summary),
        f"<p>{html.escape((summary.get('comparison') or {}).get('verdict', 'no uniform baseline'))}</p>",
        "<h2>Measured</h2>", summary_table(rows),
        f"<p class='muted'>Latency model: predicted {s.get('latency_predicted_ms', float('nan')):.3f} ms for the searched "
        f"model, {'error ' + format(err, '+.1%') if err is not None else 'no prediction'} against the measurement "
        "(both relative to the original, measured in the same rounds).</p>",
        "<h2>Plans</h2>", _plan_table(summary),
        "<h2>Pareto front</h2>", pareto_figure(rows),
        "<p class='muted'>Path points are plans the allocation passed through, converted without fine-tuning.</p>",
    ]
    if summary.get("edgetpu"):
        e = summary["edgetpu"]
        parts.append(f"<h2>Edge TPU</h2><p>edgetpu check: {e['fraction_mapped']:.0%} of the ops predicted mapped; "
                     f"parameters {e['parameter_bytes']:,} B of the {e['on_chip_cache_bytes']:,} B on-chip cache.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_search_report(path: str | Path, summary: dict) -> Path:
    """Write :func:`render_search` to ``path`` atomically."""
    from edgetpu import atomic_write_bytes

    return atomic_write_bytes(path, render_search(summary).encode())
