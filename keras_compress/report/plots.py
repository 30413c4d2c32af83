"""The report's figures, drawn with matplotlib's object API (no pyplot, no global backend change).

Each function returns PNG bytes, ready to embed in the HTML page as base64.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

from keras_compress.report.analysis import pareto_front

__all__ = ["tradeoff_plot", "sparsity_plot", "sqnr_plot", "edgetpu_plot", "PALETTE", "FRONT_COLOUR"]

#: Colours of the series (matplotlib's tab10), in order.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: Colour of the Pareto front line (not one of the series colours).
FRONT_COLOUR = "#e6007e"
_DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig, rect=(0, 0, 1, 1)) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout(rect=rect)
    fig.savefig(buf, format="png", dpi=_DPI, facecolor="white")
    return buf.getvalue()


def _tick_labels(ax, labels: Sequence[str]) -> None:
    """Layer names under the x axis: slanted when there are many, smaller when there are very many."""
    many = len(labels) > 8
    ax.set_xticklabels(labels, rotation=60 if many else 0, ha="right" if many else "center", fontsize=7 if len(labels) > 20 else 9)


def _tradeoff_axes(ax, names: Sequence[str], xs: Sequence[float], ys: Sequence[float], xlabel: str, logx: bool) -> None:
    front = pareto_front(list(zip(xs, ys)))
    for i, (n, x, y) in enumerate(zip(names, xs, ys)):
        on = i in front
        ax.scatter([x], [y * 100], s=70 if on else 45, color=PALETTE[i % len(PALETTE)], edgecolor="black" if on else "none",
                   linewidth=1.2, zorder=3, label=n)
        # labels of neighbouring points alternate above / below so that coincident points stay readable
        ax.annotate(n, (x, y * 100), textcoords="offset points", xytext=(6, (4, -11, 14, -21)[i % 4]), fontsize=8)
    if front:
        fx = [xs[i] for i in front]
        fy = [ys[i] * 100 for i in front]
        ax.step(fx, fy, where="post", color=FRONT_COLOUR, linewidth=1.5, linestyle="--", zorder=2, label="Pareto front")
    if logx and min(xs) > 0 and max(xs) / min(xs) > 4:
        ax.set_xscale("log")
        # Label only the decades: matplotlib's minor labels (2x10^1, 3x10^1, ...) overlap.
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    lo, hi = min(ys) * 100, max(ys) * 100
    pad = max(0.5, (hi - lo) * 0.15)
    ax.set_ylim(lo - pad, min(100.5, hi + pad))


def tradeoff_plot(panels: Sequence[tuple[str, Sequence[str], Sequence[float], Sequence[float], bool]], title: str) -> bytes:
    """Accuracy against one or more costs, the Pareto front dashed in red and its points outlined.

    Args:
        panels: ``(xlabel, names, xs, accuracies, logx)`` per subplot.
        title: figure title.
    """
    fig = _figure(6.0 * len(panels), 4.4)
    for k, (xlabel, names, xs, ys, logx) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        _tradeoff_axes(ax, names, xs, ys, xlabel, logx)
        if k == 0:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def sparsity_plot(series: dict[str, list[dict]]) -> bytes:
    """Grouped bars: per-layer fraction of zero weights, one colour per variant."""
    layers: list[str] = []
    for recs in series.values():
        for r in recs:
            if r["layer"] not in layers:
                layers.append(r["layer"])
    n = max(1, len(series))
    width = 0.8 / n
    fig = _figure(max(7.0, 0.45 * len(layers) * max(1, n / 2) + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for k, (variant, recs) in enumerate(series.items()):
        by = {r["layer"]: r["sparsity"] for r in recs}
        xs = [i + (k - (n - 1) / 2) * width for i, layer in enumerate(layers) if layer in by]
        ys = [by[layer] * 100 for layer in layers if layer in by]
        ax.bar(xs, ys, width=width, color=PALETTE[k % len(PALETTE)], label=variant)
    ax.set_xticks(range(len(layers)))
    _tick_labels(ax, layers)
    ax.set_ylim(0, 100)
    ax.set_ylabel("zero weights (%)")
    ax.set_title("Per-layer weight sparsity (exact zeros in the .tflite)", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def sqnr_plot(series: dict[str, list[dict]], cap_db: float = 80.0) -> bytes:
    """Per-layer SQNR (dB) of each quantized variant against float32, in execution order."""
    fig = _figure(max(7.0, 0.3 * max((len(v) for v in series.values()), default=1) + 3), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    labels: list[str] = []
    for k, (variant, recs) in enumerate(series.items()):
        ys = [min(cap_db, r["sqnr_db"]) if not math.isnan(r["sqnr_db"]) else float("nan") for r in recs]
        ax.plot(range(len(ys)), ys, marker="o", markersize=4, color=PALETTE[k % len(PALETTE)], label=variant)
        if len(recs) > len(labels):
            labels = [r["layer"] for r in recs]
    ax.set_xticks(range(len(labels)))
    _tick_labels(ax, labels)
    ax.axhline(20, color="#999999", linestyle=":", linewidth=1)
    ax.set_ylabel(f"SQNR vs float32 (dB, capped at {cap_db:.0f})")
    ax.set_title("Per-layer int8 error (higher is better; below ~20 dB deserves a look)", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def edgetpu_plot(models: dict[str, list[tuple[str, str]]]) -> bytes:
    """One strip per model: a cell per op, green on the Edge TPU, red on the CPU, grey at the boundary.

    Args:
        models: variant -> list of ``(op name, state)`` with state ``"tpu"``, ``"cpu"`` or ``"boundary"``.
    """
    from matplotlib.patches import Patch, Rectangle

    colours = {"tpu": "#2ca02c", "cpu": "#d62728", "boundary": "#9e9e9e"}
    longest = max((len(v) for v in models.values()), default=1)
    fig = _figure(max(7.0, min(16.0, 0.12 * longest + 3)), 0.6 * len(models) + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    for row, ops in enumerate(models.values()):
        y = len(models) - 1 - row
        for i, (_, state) in enumerate(ops):
            ax.add_patch(Rectangle((i, y + 0.1), 0.92, 0.8, color=colours.get(state, "#000000")))
        cut = next((i for i, (_, s) in enumerate(ops) if s == "cpu"), None)
        if cut is not None:
            ax.plot([cut - 0.05, cut - 0.05], [y, y + 1], color="black", linewidth=2)
            ax.annotate(f"cut: {ops[cut][0]}", (cut, y + 0.5), textcoords="offset points", xytext=(4, 0), fontsize=8,
                        va="center", color="white" if cut < len(ops) - 6 else "black")
    ax.set_xlim(0, longest)
    ax.set_ylim(0, len(models))
    ax.set_yticks([len(models) - 0.5 - r for r in range(len(models))])
    ax.set_yticklabels(list(models))
    ax.set_xlabel("op index (execution order)")
    ax.set_title("Edge TPU op mapping (predicted by edgetpu.check, compiler 16.0 rules)", fontsize=11)
    fig.legend(handles=[Patch(color=c, label=l) for l, c in (("Edge TPU", colours["tpu"]), ("CPU", colours["cpu"]),
                                                             ("quantize/dequantize at the ends (CPU)", colours["boundary"]))],
               fontsize=8, loc="lower center", ncol=3)
    return _png(fig, rect=(0, 0.1 if len(models) > 2 else 0.16, 1, 1))
