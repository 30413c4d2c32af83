"""``report``: the end of a run: ``summary.json`` / ``.md``, ``run.json``, the table, and ``report.html``.

Runs once, after every variant. The table (stdout) and ``summary.md`` end
with the machine line (CPU and its int8-relevant ISA features).

Recipe form (top level)::

    report: {html: true}

Example:
    >>> ReportSpec().html
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.registry import Stage
from keras_compress.pipeline.spec import boolean, setting

__all__ = ["ReportSpec", "run", "STAGE"]


@dataclass(frozen=True, kw_only=True)
class ReportSpec:
    """Whether to write the HTML report beside the summary."""

    html: bool = setting(boolean, True)


def run(spec: ReportSpec, artifact: Artifact | None, ctx) -> Artifact | None:
    from keras_compress.machine import machine_description
    from keras_compress.summary import format_table, write_summary

    info = ctx.info
    info.setdefault("machine", machine_description())
    info["seconds"] = round(time.perf_counter() - info.get("started", time.perf_counter()), 1)
    info["timings"] = ctx.timings
    info["keras_accuracy"] = {name: a.meta.get("keras_accuracy") for name, a in ctx.artifacts.items()}
    meta = {k: v for k, v in info.items() if k != "started"}
    for path in write_summary(ctx.rows, ctx.folder.path, meta=meta):
        ctx.folder.record(path)
    if ctx.show_table:
        print(format_table(ctx.rows, info["machine"]), flush=True)
    if spec.html and ctx.rows:
        from keras_compress.report import write_report

        page = write_report(ctx.folder.path)
        ctx.folder.record(page)
        ctx.folder.record(page.with_suffix(".json"))
        ctx.say(f"[report] {page}")
    return artifact


STAGE = Stage("report", ReportSpec, run, takes="run", gives="run")
