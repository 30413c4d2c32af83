"""Where each op runs once ``edgetpu_compiler`` 16 has compiled the model: CPU prefix, Edge TPU, CPU after.

What the models Coral compiled with compiler 16 show (EDGETPU.md): the compiler
makes ONE Edge TPU custom op out of a contiguous int8 region of the graph. Ops
that cannot map and are fed only by the model's inputs (or by other such ops)
stay on the CPU *before* it, as a prefix (a MoveNet: uint8 input -> CAST ->
QUANTIZE float->int8 on the CPU, then the int8 body on the TPU). The first op
after the region that cannot map, and everything that depends on it, run on
the CPU *after* it (the MoveNet's ARG_MAX / FLOOR_DIV / GATHER_ND / ...
post-processing). The region itself is every op that can map and does not
depend on a CPU op after it, so it may have several outputs (the MoveNet's has
5). A float-input QUANTIZE reading a model input and a DEQUANTIZE writing a
model output from the TPU's result are the float I/O boundary: on the CPU,
never counted as cut.

:func:`partition` reads only the data flow (which op produces each tensor) and
what :func:`edgetpu.rules.judge` said of each op.

Example:
    >>> from edgetpu.partition import PARTS
    >>> PARTS
    ('boundary', 'prefix', 'tpu', 'cpu')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgetpu.model import Operator, Subgraph

__all__ = ["PARTS", "Partition", "partition", "segment_outputs"]

#: Where an op runs: float I/O boundary (CPU, not counted), CPU prefix, Edge TPU, CPU after the Edge TPU.
PARTS = ("boundary", "prefix", "tpu", "cpu")

_EIGHT_BIT = ("int8", "uint8")


@dataclass
class Partition:
    """The part of every op (:data:`PARTS`), in op order.

    ``cut`` is the first op after the Edge TPU segment that cannot map (None
    when nothing runs on the CPU after it; when nothing maps at all, the first
    op that cannot map). ``roots[i]`` is, for an op on the CPU after the
    segment, the op that cannot map from which it descends (itself for such an
    op).
    """

    parts: list[str]
    cut: int | None
    roots: dict[int, int]

    def count(self, part: str) -> int:
        return sum(1 for p in self.parts if p == part)

    def indices(self, part: str) -> list[int]:
        return [i for i, p in enumerate(self.parts) if p == part]


def _is_input_quantize(sg: Subgraph, op: Operator) -> bool:
    """A QUANTIZE of a float model input: the float I/O boundary at the input."""
    return (op.op == "QUANTIZE" and len(op.inputs) > 0 and op.inputs[0] in sg.inputs
            and sg.tensors[op.inputs[0]].dtype.startswith("float"))


def _is_output_dequantize(sg: Subgraph, op: Operator, sources: Sequence[str]) -> bool:
    """A DEQUANTIZE of the TPU's 8-bit result into a model output: the float I/O boundary at the output."""
    return (op.op == "DEQUANTIZE" and len(op.inputs) > 0 and len(op.outputs) > 0
            and all(o in sg.outputs for o in op.outputs)
            and sg.tensors[op.inputs[0]].dtype in _EIGHT_BIT and set(sources) == {"tpu"})


def _part_of(sg: Subgraph, op: Operator, problems: Sequence[str], refused: bool, sources: Sequence[str]) -> str:
    if _is_input_quantize(sg, op) and not refused:
        return "boundary"
    if problems and _is_output_dequantize(sg, op, sources) and not refused:
        return "boundary"
    upstream = set(sources)
    if problems:
        return "prefix" if upstream <= {"input", "prefix", "boundary"} else "cpu"
    return "cpu" if "cpu" in upstream else "tpu"


def partition(sg: Subgraph, problems: Sequence[Sequence[str]], refused: Sequence[bool]) -> Partition:
    """Split the ops of ``sg`` into the CPU prefix, the Edge TPU segment and the CPU ops after it.

    Args:
        sg: the subgraph (its ops in execution order).
        problems: per op, why it cannot map on its own (empty: it can).
        refused: per op, True when its version makes the compiler refuse the model
            (such an op is never taken as float I/O boundary).
    """
    made_by: dict[int, int] = {}  # tensor -> op that produces it
    parts: list[str] = []
    roots: dict[int, int] = {}
    for op in sg.operators:
        ups = [made_by[i] for i in op.inputs if i >= 0 and i in made_by and not sg.tensors[i].is_constant]
        sources = [parts[u] for u in ups] or ["input"]
        part = _part_of(sg, op, problems[op.index], refused[op.index], sources)
        if part == "cpu":
            cpu_ups = [u for u in ups if parts[u] == "cpu"]
            roots[op.index] = roots[cpu_ups[0]] if cpu_ups else op.index
        parts.append(part)
        for o in op.outputs:
            made_by.setdefault(o, op.index)
    if "tpu" not in parts:  # nothing maps: the graph is cut at its first op that cannot map
        return _nothing_maps(parts, problems)
    cut = next((i for i, p in enumerate(parts) if p == "cpu"), None)
    return Partition(parts, cut, roots)


def _nothing_maps(parts: list[str], problems: Sequence[Sequence[str]]) -> Partition:
    cut = next((i for i, p in enumerate(parts) if p != "boundary" and problems[i]), None)
    out = [p if p == "boundary" else "cpu" for p in parts]
    roots = {i: cut for i, p in enumerate(out) if p == "cpu" and cut is not None and i >= cut}
    return Partition(out, cut, roots)


def segment_outputs(sg: Subgraph, parts: Sequence[str]) -> list[int]:
    """Tensors the Edge TPU segment hands back: read by an op outside it, or model outputs."""
    made_in_tpu = {o for op in sg.operators if parts[op.index] == "tpu" for o in op.outputs}
    read_outside = {i for op in sg.operators if parts[op.index] != "tpu" for i in op.inputs}
    return sorted(t for t in made_in_tpu if t in read_outside or t in sg.outputs)
