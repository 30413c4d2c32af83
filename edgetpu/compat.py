"""Predict, before compiling, what ``edgetpu_compiler`` 16.0 will map to the Edge TPU.

:func:`check` reads a .tflite model (no TensorFlow, no compiler, no
``ai_edge_litert``), validates it (:func:`edgetpu.validation.validate`: a model
the interpreter would crash on is reported as invalid, never as mappable),
applies the Edge TPU's rules to every op (:mod:`edgetpu.rules`: the op table
and its limits, 8-bit tensors, static shapes, at most 3 non-1 dimensions, op
versions the compiler knows) and partitions the graph by its data flow as
compiler 16 does (:mod:`edgetpu.partition`): a CPU prefix of ops fed only by
the model inputs that cannot map, ONE Edge TPU segment, and the ops after it
that cannot map with everything depending on them on the CPU. A float-input
Quantize and a float-output Dequantize around the segment are the float I/O
boundary: on the CPU, not counted in ``fraction_mapped``.

It also names known risks (a resize whose scale factor was not seen mapped,
an LSTM with ~1000 input features), the activation memory from the real
tensor sizes, and, with ``runtime="2.14"``, every op whose version that TF
Lite runtime lacks (:func:`edgetpu.runtime_versions.ops_newer_than`).

Example:
    >>> import edgetpu
    >>> r = edgetpu.check("model_int8.tflite")               # doctest: +SKIP
    >>> r.status, r.fraction_mapped, r.cut_index              # doctest: +SKIP
    (0, 1.0, None)
    >>> print(r.format_table())                               # doctest: +SKIP

Sources: Coral "TensorFlow models on the Edge TPU" (requirements and op
table), TensorFlow's ``runtime_version.cc`` (op version -> first TF release),
models Coral compiled with compiler 16 and public google-coral/edgetpu issues,
as collected in the project's EDGETPU.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgetpu.check_result import EXIT_CODES, ON_CHIP_CACHE_BYTES, CheckResult, OpRecord
from edgetpu.model import EDGETPU_CUSTOM_OP, Model, Operator, Subgraph
from edgetpu.partition import Partition, partition, segment_outputs
from edgetpu.rules import (
    COMPILER_TFLITE_RUNTIME,
    COMPILER_VERSION,
    SOFTMAX_MAX_ELEMENTS,
    SUPPORTED_OPS,
    UNSUPPORTED_HINTS,
    OpVerdict,
    judge,
)
from edgetpu.runtime_versions import (
    OP_VERSION_FIRST_RELEASE,
    OpRuntime,
    first_release,
    ops_newer_than,
    parse_version,
    required_runtime,
)
from edgetpu.validation import validate

__all__ = [
    "COMPILER_TFLITE_RUNTIME",
    "COMPILER_VERSION",
    "EXIT_CODES",
    "ON_CHIP_CACHE_BYTES",
    "OP_VERSION_FIRST_RELEASE",
    "SOFTMAX_MAX_ELEMENTS",
    "SUPPORTED_OPS",
    "UNSUPPORTED_HINTS",
    "CheckResult",
    "OpRecord",
    "activation_memory",
    "check",
    "first_release",
]

_BOUNDARY_REASON = {
    "QUANTIZE": "float input quantized on the CPU (allowed at the model input; does not cut the graph)",
    "DEQUANTIZE": "output dequantized to float on the CPU (allowed at the model output; does not cut the graph)",
}


def _record(sg: Subgraph, op: Operator) -> OpRecord:
    ins = [sg.tensors[i] for i in op.inputs if i >= 0]
    # Show data inputs first: constants (weights, shapes) after activations.
    ins = [t for t in ins if not t.is_constant] + [t for t in ins if t.is_constant]
    outs = [sg.tensors[i] for i in op.outputs if i >= 0]
    return OpRecord(
        index=op.index,
        op=op.op,
        version=op.version,
        input_dtypes=[t.dtype for t in ins],
        input_shapes=[list(t.shape) for t in ins],
        output_dtypes=[t.dtype for t in outs],
        output_shapes=[list(t.shape) for t in outs],
    )


def _cpu_reason(sg: Subgraph, i: int, v: OpVerdict, p: Partition) -> str:
    root = p.roots.get(i, i)
    own = "; ".join(v.problems)
    if root == i:
        return own if i == p.cut else f"runs on the CPU after the Edge TPU segment: {own}"
    where = "the cut at op" if root == p.cut else "op"
    tail = f"; its own issue: {own}" if own else ""
    return f"after {where} #{root} ({sg.operators[root].op}): runs on the CPU{tail}"


def _reason(sg: Subgraph, op: Operator, v: OpVerdict, p: Partition) -> str:
    part = p.parts[op.index]
    if op.custom_code == EDGETPU_CUSTOM_OP:
        return "already compiled for the Edge TPU (edgetpu-custom-op)"
    if part == "boundary":
        return _BOUNDARY_REASON[op.op]
    if part == "prefix":
        return "on the CPU before the Edge TPU segment (fed only by model inputs): " + "; ".join(v.problems)
    if part == "cpu":
        return _cpu_reason(sg, op.index, v, p)
    notes = f" ({'; '.join(v.notes)})" if v.notes else ""
    risks = "".join(f"; risk: {r}" for r in v.risks)
    return f"mapped to the Edge TPU{notes}{risks}"


def _records(sg: Subgraph, verdicts: Sequence[OpVerdict], p: Partition) -> list[OpRecord]:
    records = []
    for op, v in zip(sg.operators, verdicts):
        rec = _record(sg, op)
        rec.part = p.parts[op.index]
        rec.mapped = rec.part == "tpu"
        rec.boundary = rec.part == "boundary"
        rec.problems = [] if rec.boundary else list(v.problems)
        rec.risks = list(v.risks)
        rec.reason = _reason(sg, op, v, p)
        records.append(rec)
    return records


def _parameter_bytes(sg: Subgraph, records: Sequence[OpRecord]) -> int:
    """Constant operands of the mapped ops (each buffer once): what the TPU caches."""
    bufs: dict[int, int] = {}
    for r, op in zip(records, sg.operators):
        if r.mapped:
            for i in op.inputs:
                if i >= 0 and sg.tensors[i].is_constant:
                    bufs[sg.tensors[i].buffer] = sg.tensors[i].buffer_bytes
    return int(sum(bufs.values()))


def activation_memory(sg: Subgraph) -> tuple[int, dict[str, Any] | None]:
    """Peak bytes of activations live at once (in execution order), and the largest activation tensor.

    Sizes are the real tensor sizes (elements x item size), so a 4 GB
    activation reads as 4 GB. Returns ``(peak_bytes, {"name", "shape",
    "bytes"})``; the second is None when the graph has no activation.
    """
    size = {t.index: t.nbytes or 0 for t in sg.tensors if not t.is_constant}
    last_use: dict[int, int] = {}
    for op in sg.operators:
        for i in op.inputs:
            if i in size:
                last_use[i] = op.index
    end = len(sg.operators)
    for i in sg.outputs:
        last_use[i] = end
    live = {i for i in sg.inputs if i in size} | {i for i in size if sg.tensors[i].is_variable}
    peak = current = sum(size[i] for i in live)
    for op in sg.operators:
        for o in op.outputs:
            if o in size and o not in live:
                live.add(o)
                current += size[o]
        peak = max(peak, current)
        for i in [i for i in live if last_use.get(i, op.index) <= op.index]:
            live.discard(i)
            current -= size[i]
    if not size:
        return 0, None
    big = max(size, key=size.get)
    t = sg.tensors[big]
    return peak, {"name": t.name, "shape": list(t.shape), "bytes": size[big]}


def _float_warning(core: Sequence[OpRecord], n_mapped: int) -> str | None:
    float_ops = [r for r in core if any("not quantized" in p for p in r.problems)]
    if float_ops and n_mapped == 0:
        return (f"model is not quantized ({len(float_ops)} of {len(core)} ops use float tensors): edgetpu_compiler "
                "refuses it ('Model not quantized'). Convert with full-integer quantization, e.g. "
                "keras_compress.convert.to_tflite(model, target=\"edgetpu\")")
    if float_ops:
        return (f"{len(float_ops)} op(s) use float tensors (first: op #{float_ops[0].index} {float_ops[0].op}); "
                "they run on the CPU. Unless they are pre- or post-processing, convert the whole model to int8 "
                "(TFLITE_BUILTINS_INT8 only)")
    return None


def _dynamic_batch_warning(sg: Subgraph) -> str | None:
    dyn = [sg.tensors[i] for i in sg.inputs if sg.tensors[i].shape_signature and sg.tensors[i].shape_signature[0] < 0]
    if not dyn and not any(t.shape_signature and t.shape_signature[0] < 0 for t in sg.tensors if not t.is_constant):
        return None
    names = ", ".join(f"'{t.name}' {list(t.shape_signature)}" for t in dyn) or "intermediate tensors"
    return (f"dynamic batch dimension (shape_signature -1) on {names}: the Edge TPU needs static shapes and "
            "edgetpu_compiler can fail with 'Attempting to use a delegate that only supports static-sized "
            "tensors'. Fix: convert with a static batch of 1 - keras_compress.convert.to_tflite(model, "
            "target=\"edgetpu\") does this (or export with input_signature=[tf.TensorSpec((1, ...))])")


def _compiler_warnings(m: Model, refused: Sequence[str]) -> list[str]:
    out = []
    if refused:
        out.append("edgetpu_compiler will refuse the whole model ('Invalid model ... Model could not be "
                   f"parsed'): {refused[0]}. Convert with a TF release whose converter emits older op "
                   "versions, or change the layer so the converter picks a lower version")
    mrv = m.min_runtime_version
    if mrv and parse_version(mrv) > parse_version(COMPILER_TFLITE_RUNTIME):
        out.append(f"model metadata min_runtime_version {mrv} is newer than the TF Lite runtime edgetpu_compiler "
                   f"{COMPILER_VERSION.split('.')[0]}.0 embeds (~{COMPILER_TFLITE_RUNTIME}): expect \"Didn't find "
                   "op for builtin opcode\" errors")
    if len(m.subgraphs) > 1:
        out.append(f"model has {len(m.subgraphs)} subgraphs; only subgraph 0 is checked and the Edge TPU maps one "
                   "subgraph (More than one subgraph is not supported)")
    if m.has_edgetpu_custom_op:
        out.append("model is already compiled for the Edge TPU (holds edgetpu-custom-op); check the "
                   "original CPU model instead")
    return out


def _memory_warnings(parameter_bytes: int, largest: dict[str, Any] | None, n_mapped: int) -> list[str]:
    out = []
    if parameter_bytes > ON_CHIP_CACHE_BYTES:
        out.append(f"parameters of the mapped ops ({parameter_bytes / 2**20:.2f} MiB) exceed the ~"
                   f"{ON_CHIP_CACHE_BYTES / 2**20:.0f} MiB on-chip cache: the rest streams from host memory "
                   "(slower); consider compile(..., num_segments=N) to pipeline over several Edge TPUs")
    if n_mapped and largest and largest["bytes"] > ON_CHIP_CACHE_BYTES:
        out.append(f"activation tensor '{largest['name']}' {largest['shape']} takes "
                   f"{largest['bytes'] / 2**20:.1f} MiB, more than the Edge TPU's ~8 MiB on-chip memory: "
                   "edgetpu_compiler can fail with 'Compilation failed due to large activation tensors in model'")
    return out


def _runtime_warning(runtime: str | None, conflicts: Sequence[OpRuntime]) -> str | None:
    if not conflicts:
        return None
    shown = "; ".join(c.describe(runtime) for c in conflicts[:5])
    more = f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
    return (f"TF Lite runtime {runtime} lacks {len(conflicts)} op version(s) of this model: {shown}{more}. "
            f"Convert for that runtime (keras_compress.convert.to_tflite(..., min_runtime=\"{runtime}\")) or "
            "install a newer interpreter")


def _status(n_core: int, n_mapped: int, refused: Sequence[str]) -> int:
    if refused or n_mapped == 0:
        return 2
    return 0 if n_mapped == n_core else 1


def _verdict(status: int, sg: Subgraph, records: Sequence[OpRecord], p: Partition, refused, float_w) -> str:
    n_core = sum(1 for r in records if not r.boundary)
    n_mapped = sum(1 for r in records if r.mapped)
    if status == 0:
        return "fully mappable: every op runs on the Edge TPU"
    if status == 1:
        parts = []
        if p.count("prefix"):
            parts.append(f"{p.count('prefix')} before it on the CPU")
        if p.cut is not None:
            parts.append(f"{p.count('cpu')} after it on the CPU, from op #{p.cut} ({sg.operators[p.cut].op})")
        return f"partly mappable: {n_mapped}/{n_core} ops on the Edge TPU; " + ", ".join(parts)
    if refused:
        return "unusable: edgetpu_compiler would refuse the model (op version too new)"
    if float_w and float_w.startswith("model is not quantized"):
        return "unusable: the model is not quantized (float); convert it to full int8"
    if p.cut is not None:
        return f"unusable: nothing maps; the first op #{p.cut} ({sg.operators[p.cut].op}) cannot run on the Edge TPU"
    return "unusable: nothing maps to the Edge TPU"


def _model_warnings(m: Model, sg: Subgraph, records, verdicts, refused, params, largest, conflicts, runtime):
    core = [r for r in records if not r.boundary]
    n_mapped = sum(1 for r in core if r.mapped)
    float_w = _float_warning(core, n_mapped)
    warnings = [w for w in (float_w, _dynamic_batch_warning(sg)) if w]
    warnings += _compiler_warnings(m, refused)
    warnings += _memory_warnings(params, largest, n_mapped)
    warnings += [risk for r in records if r.mapped for risk in r.risks]
    warnings += [w for w in (_runtime_warning(runtime, conflicts),) if w]
    if not core:
        warnings.append("model has no operators")
    return warnings, float_w


def check(model, runtime: str | None = None) -> CheckResult:
    """Predict which ops of a .tflite model ``edgetpu_compiler`` 16.0 maps to the Edge TPU.

    Args:
        model: path to a .tflite file, its bytes, or an :class:`edgetpu.model.Model`.
        runtime: a TF Lite runtime release (``"2.14"``): also list every op whose
            version that runtime lacks (``runtime_conflicts``; exit code 4).

    Returns:
        A :class:`CheckResult`; see its ``status``, ``exit_code``, ``ops`` (each
        with ``part`` and ``reason``), ``cut_index``, ``warnings``,
        ``format_table()`` and ``to_dict()``.

    Raises:
        InvalidModelError: the input is not a readable .tflite model, or is
            malformed (:class:`edgetpu.errors.MalformedModelError`).
        VersionError: ``runtime`` is not a version.
    """
    if runtime is not None:
        parse_version(runtime)
    m = validate(model)
    sg = m.main
    verdicts = [judge(m, sg, op) for op in sg.operators]
    p = partition(sg, [v.problems for v in verdicts], [v.refusal is not None for v in verdicts])
    records = _records(sg, verdicts, p)
    refused = [f"op #{op.index} {v.refusal}" for op, v in zip(sg.operators, verdicts) if v.refusal]
    params = _parameter_bytes(sg, records)
    peak, largest = activation_memory(sg)
    conflicts = ops_newer_than(m, runtime) if runtime is not None else []
    warnings, float_w = _model_warnings(m, sg, records, verdicts, refused, params, largest, conflicts, runtime)
    core = [r for r in records if not r.boundary]
    n_mapped = sum(1 for r in core if r.mapped)
    status = _status(len(core), n_mapped, refused)
    return CheckResult(
        model=m.source, ops=records, fraction_mapped=n_mapped / len(core) if core else 0.0, cut_index=p.cut,
        parameter_bytes=params, fits_on_chip=params <= ON_CHIP_CACHE_BYTES, warnings=warnings, status=status,
        verdict=_verdict(status, sg, records, p, refused, float_w), min_runtime_version=m.min_runtime_version,
        required_runtime=required_runtime(m), subgraphs=len(m.subgraphs), runtime=runtime,
        runtime_conflicts=conflicts, activation_peak_bytes=peak, largest_activation=largest,
        segment_outputs=len(segment_outputs(sg, p.parts)),
    )
