"""What :func:`edgetpu.check` returns: one record per op and the model's verdict, as a table or JSON.

Example:
    >>> from edgetpu.check_result import EXIT_CODES
    >>> EXIT_CODES[0], EXIT_CODES[3]
    ('every op maps to the Edge TPU', 'nothing maps, or edgetpu_compiler would refuse the model')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgetpu.rules import COMPILER_TFLITE_RUNTIME, COMPILER_VERSION
from edgetpu.runtime_versions import OpRuntime

__all__ = ["EXIT_CODES", "ON_CHIP_CACHE_BYTES", "CheckResult", "OpRecord"]

#: Edge TPU on-chip memory for caching parameters ("about 8 MB").
ON_CHIP_CACHE_BYTES = 8 * 1024 * 1024

#: Exit status of ``edgetpu check`` (``CheckResult.exit_code``); 2 is bad input (not a model, unreadable).
EXIT_CODES = {
    0: "every op maps to the Edge TPU",
    1: "some ops map; the rest run on the CPU (before or after the Edge TPU segment)",
    2: "bad input: not a TFLite model, unreadable, or malformed (nothing was checked)",
    3: "nothing maps, or edgetpu_compiler would refuse the model",
    4: "with --runtime: some op needs a newer TF Lite runtime than the one named",
}

_WHERE = {"boundary": "CPU (float I/O)", "prefix": "CPU (before)", "tpu": "TPU", "cpu": "CPU"}


@dataclass
class OpRecord:
    """One op of the model, with the prediction for it.

    ``part`` says where it runs: ``"tpu"`` (the Edge TPU segment), ``"prefix"``
    (CPU, before the segment), ``"cpu"`` (CPU, after it) or ``"boundary"``
    (the float I/O Quantize/Dequantize, on the CPU, not counted). ``mapped`` is
    ``part == "tpu"``. ``reason`` says why; ``problems`` lists the op's own
    rule violations even where it runs on the CPU only because of another op;
    ``risks`` are known limits that may still keep a mapped op on the CPU.
    """

    index: int
    op: str
    version: int
    input_dtypes: list[str]
    input_shapes: list[list[int]]
    output_dtypes: list[str]
    output_shapes: list[list[int]]
    mapped: bool = False
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    boundary: bool = False
    part: str = "cpu"
    risks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "version": self.version,
            "input_dtypes": self.input_dtypes,
            "input_shapes": self.input_shapes,
            "output_dtypes": self.output_dtypes,
            "output_shapes": self.output_shapes,
            "mapped": self.mapped,
            "part": self.part,
            "reason": self.reason,
            "problems": self.problems,
            "risks": self.risks,
            "boundary": self.boundary,
        }


@dataclass
class CheckResult:
    """What :func:`edgetpu.check` predicts for one model.

    ``status``: 0 every op maps, 1 some ops map (the rest run on the CPU), 2
    unusable (nothing maps, e.g. a float model, or the compiler would refuse
    the model, e.g. an op version it does not know). ``exit_code`` is what
    ``edgetpu check`` exits with (:data:`EXIT_CODES`: unusable is 3 there, so
    that 2 means bad input; 4 when ``runtime`` lacks an op version).
    ``fraction_mapped`` excludes the float-I/O Quantize/Dequantize at the
    model boundary, which always run on the CPU.
    """

    model: str
    ops: list[OpRecord]
    fraction_mapped: float
    cut_index: int | None
    parameter_bytes: int
    fits_on_chip: bool
    warnings: list[str]
    status: int
    verdict: str
    min_runtime_version: str | None = None
    required_runtime: str | None = None
    compiler_version: str = COMPILER_VERSION
    on_chip_cache_bytes: int = ON_CHIP_CACHE_BYTES
    subgraphs: int = 1
    runtime: str | None = None
    runtime_conflicts: list[OpRuntime] = field(default_factory=list)
    activation_peak_bytes: int = 0
    largest_activation: dict[str, Any] | None = None
    segment_outputs: int = 0

    @property
    def exit_code(self) -> int:
        if self.runtime_conflicts:
            return 4
        return 3 if self.status == 2 else self.status

    @property
    def ops_on_tpu(self) -> int:
        return sum(1 for r in self.ops if r.mapped)

    @property
    def ops_on_cpu(self) -> int:
        return sum(1 for r in self.ops if not r.mapped)

    @property
    def ops_before(self) -> int:
        """Ops on the CPU before the Edge TPU segment (the CPU prefix)."""
        return sum(1 for r in self.ops if r.part == "prefix")

    @property
    def ops_after(self) -> int:
        """Ops on the CPU after the Edge TPU segment (float I/O boundary not counted)."""
        return sum(1 for r in self.ops if r.part == "cpu")

    @property
    def cut_op(self) -> str | None:
        return None if self.cut_index is None else self.ops[self.cut_index].op

    @property
    def fully_mapped(self) -> bool:
        return self.status == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "status": self.status,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "fraction_mapped": self.fraction_mapped,
            "ops_on_tpu": self.ops_on_tpu,
            "ops_on_cpu": self.ops_on_cpu,
            "ops_before": self.ops_before,
            "ops_after": self.ops_after,
            "segment_outputs": self.segment_outputs,
            "cut_index": self.cut_index,
            "cut_op": self.cut_op,
            "parameter_bytes": self.parameter_bytes,
            "fits_on_chip": self.fits_on_chip,
            "on_chip_cache_bytes": self.on_chip_cache_bytes,
            "activation_peak_bytes": self.activation_peak_bytes,
            "largest_activation": self.largest_activation,
            "min_runtime_version": self.min_runtime_version,
            "required_runtime": self.required_runtime,
            "runtime": self.runtime,
            "runtime_conflicts": [c.to_dict() for c in self.runtime_conflicts],
            "compiler_version": self.compiler_version,
            "compiler_tflite_runtime": COMPILER_TFLITE_RUNTIME,
            "subgraphs": self.subgraphs,
            "warnings": list(self.warnings),
            "ops": [r.to_dict() for r in self.ops],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def format_table(self, max_reason: int = 100) -> str:
        """A readable table: one row per op (where it runs and why), then the three parts and the verdict."""
        lines = [f"Edge TPU check of {self.model} (rules of edgetpu_compiler {COMPILER_VERSION})"]
        lines += _op_rows(self.ops, max_reason)
        lines.append("")
        lines += _summary_lines(self)
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"Verdict: {self.verdict} (exit {self.exit_code})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _tensor_text(dtypes: Sequence[str], shapes: Sequence[Sequence[int]]) -> str:
    if not dtypes:
        return "-"
    return f"{dtypes[0]}[{','.join(str(d) for d in shapes[0])}]"


def _op_rows(ops: Sequence[OpRecord], max_reason: int) -> list[str]:
    rows = [("#", "op", "v", "input", "output", "where", "reason")]
    for r in ops:
        reason = r.reason if len(r.reason) <= max_reason else r.reason[: max_reason - 3] + "..."
        rows.append((str(r.index), r.op, str(r.version), _tensor_text(r.input_dtypes, r.input_shapes),
                     _tensor_text(r.output_dtypes, r.output_shapes), _WHERE.get(r.part, r.part), reason))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    out = []
    for row in rows:
        cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 6)] + [row[6]]
        out.append("  ".join(cells).rstrip())
    return out


def _part_line(r: CheckResult, part: str, label: str) -> str | None:
    idx = [o for o in r.ops if o.part == part]
    if not idx:
        return None
    listed = ", ".join(f"#{o.index} {o.op}" for o in idx[:4]) + (", ..." if len(idx) > 4 else "")
    return f"  {label}: {len(idx)} op(s) ({listed})"


def _summary_lines(r: CheckResult) -> list[str]:
    core = [o for o in r.ops if not o.boundary]
    lines = [f"Mapped to the Edge TPU: {r.ops_on_tpu}/{len(core)} ops ({r.fraction_mapped:.0%})"]
    if r.ops_on_tpu and (r.ops_before or r.ops_after):
        for part, label in (("prefix", "CPU before the Edge TPU segment"), ("tpu", "Edge TPU segment"),
                            ("cpu", "CPU after the Edge TPU segment")):
            line = _part_line(r, part, label)
            if line:
                lines.append(line + (f", {r.segment_outputs} output tensor(s)" if part == "tpu" else ""))
    if r.cut_index is not None:
        lines.append(f"Cut at op #{r.cut_index} ({r.cut_op}): it and every op that depends on it run on the CPU")
    mib, cap = r.parameter_bytes / 2**20, r.on_chip_cache_bytes / 2**20
    fit = "fits" if r.fits_on_chip else "does NOT fit; the rest streams from host memory"
    lines.append(f"Parameters on the TPU: {mib:.2f} MiB of ~{cap:.0f} MiB on-chip cache ({fit})")
    if r.largest_activation:
        big = r.largest_activation
        lines.append(f"Activations: peak {r.activation_peak_bytes / 2**20:.2f} MiB live at once; largest tensor "
                     f"'{big['name']}' {big['shape']} {big['bytes'] / 2**20:.2f} MiB")
    if r.min_runtime_version:
        lines.append(f"min_runtime_version (metadata): {r.min_runtime_version}")
    if r.runtime:
        ok = "has every op version" if not r.runtime_conflicts else f"lacks {len(r.runtime_conflicts)} op version(s)"
        lines.append(f"TF Lite runtime {r.runtime}: {ok} (the model needs {r.required_runtime or 'unknown'})")
    return lines
