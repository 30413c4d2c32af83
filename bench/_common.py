"""Shared by the bench scripts: machine description, interleaved timing, JSON + markdown output.

Every results file ends with :func:`machine_md`: the CPU and the ISA features that decide whether int8
beats float32 (see keras_compress.machine), the library versions and the load average.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from keras_compress.machine import describe, loadavg, machine_description

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

__all__ = ["machine", "loadavg", "write_results", "md_table", "interleave", "machine_md", "RESULTS"]


def machine() -> dict:
    """CPU, its int8-relevant ISA features, cores, versions and load (keras_compress.machine), plus matplotlib's version."""
    m = machine_description(("tensorflow", "keras", "ai_edge_litert", "numpy", "matplotlib"))
    m["loadavg_start"] = m.pop("loadavg")
    return m


def interleave(tasks: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call every task once per round, rotating the order each round, so drift hits all tasks alike.

    Returns:
        task name -> the ``rounds`` values it returned.
    """
    names = list(tasks)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            out[n].append(float(tasks[n]()))
    return out


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_md(m: dict) -> str:
    """The machine line of every results file: CPU and its int8-relevant features, versions, load."""
    v = ", ".join(f"{k} {x}" for k, x in (m.get("versions") or {}).items() if x)
    la = m.get("loadavg_start")
    return f"{describe(m)}. Python {m.get('python')}; {v}. Load average at start: {la}, at end: {m.get('loadavg_end')}."


def write_results(name: str, payload: dict, markdown: str, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md`` (the markdown gets the machine line)."""
    out = Path(out_dir or RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    payload.setdefault("machine", {})["loadavg_end"] = loadavg()
    payload["written"] = time.strftime("%Y-%m-%d %H:%M:%S")
    j = out / f"{name}.json"
    j.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md = out / f"{name}.md"
    md.write_text(markdown.rstrip() + "\n\n" + machine_md(payload["machine"]) + "\n")
    return j, md


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))
