"""Shared by the bench scripts: machine description, interleaved timing, JSON + markdown output."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

__all__ = ["machine", "loadavg", "write_results", "md_table", "interleave", "RESULTS"]


def loadavg() -> list[float] | None:
    """1/5/15-minute load averages (Linux), to tell a quiet machine from a busy one."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def machine() -> dict:
    """CPU model, cores, library versions (keras_compress.demo.machine_description) plus load and CPU flags."""
    from keras_compress.demo import machine_description

    m = machine_description()
    try:
        import matplotlib

        m["versions"]["matplotlib"] = matplotlib.__version__
    except ImportError:
        pass
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        m["simd"] = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags.split()]
    except (OSError, StopIteration):
        pass
    try:
        m["affinity_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    m["loadavg_start"] = loadavg()
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
    v = ", ".join(f"{k} {x}" for k, x in (m.get("versions") or {}).items() if x)
    la = m.get("loadavg_start")
    return (f"Machine: {m.get('cpu')}, {m.get('cores')} cores ({', '.join(m.get('simd') or [])}), "
            f"Python {m.get('python')}; {v}. Load average at start: {la}, at end: {m.get('loadavg_end')}.")


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
