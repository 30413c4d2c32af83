"""Run Coral's ``edgetpu_compiler`` and turn its report into a result object.

:func:`compile` finds the compiler (``$EDGETPU_COMPILER``, else ``PATH``),
runs it on a *copy* of the model in a temporary folder, parses its stdout and
its ``*_edgetpu.log`` operation table, and moves the outputs into ``out_dir``
(each file through a temp name + rename, so a failure never leaves a
half-written model). The input file is never touched.

The compiler exists only for x86-64 Debian/Ubuntu (Coral's apt repository,
package ``edgetpu-compiler``); :func:`edgetpu.check` predicts the mapping on any
machine without it.

Example:
    >>> import edgetpu
    >>> r = edgetpu.compile("model_int8.tflite", "out/")     # doctest: +SKIP
    >>> r.ops_on_tpu, r.ops_on_cpu, r.output_paths            # doctest: +SKIP
    (65, 0, ['out/model_int8_edgetpu.tflite'])
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetpu.errors import CompilerError, CompilerNotFoundError, InputError, OutputError
from edgetpu.files import atomic_write_bytes, check_writable
from edgetpu.model import load_bytes, read_model

__all__ = [
    "INSTALL_HINT",
    "CompileResult",
    "OpStatus",
    "compile",
    "find_compiler",
    "parse_log",
    "parse_size",
    "parse_stdout",
]

MAPPED = "Mapped to Edge TPU"
#: Seconds the process may run past ``timeout_s`` before it is killed.
KILL_GRACE_S = 30.0

INSTALL_HINT = (
    "edgetpu_compiler runs only on x86-64 Linux and comes from Coral's Debian repository: "
    "echo 'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main' | "
    "sudo tee /etc/apt/sources.list.d/coral-edgetpu.list, add the key from "
    "https://packages.cloud.google.com/apt/doc/apt-key.gpg, then `sudo apt-get update && "
    "sudo apt-get install edgetpu-compiler` (elsewhere: Coral's Colab compiler notebook); "
    "or set EDGETPU_COMPILER=/path/to/edgetpu_compiler. "
    "`edgetpu check MODEL` predicts the Edge TPU mapping without the compiler"
)

_UNITS = {"B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMG]?i?B)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a compiler size string: ``"6.03MiB"`` -> 6322913, ``"0.00B"`` -> 0.

    Raises:
        InputError: the text is not a size.
    """
    m = _SIZE_RE.match(text or "")
    if not m:
        raise InputError(f"not a size: {text!r} (expected e.g. '6.03MiB', '512.00KiB', '0.00B')")
    unit = m.group(2).upper()
    if unit not in _UNITS:
        raise InputError(f"unknown size unit in {text!r}")
    return round(float(m.group(1)) * _UNITS[unit])


@dataclass
class OpStatus:
    """One row of the compiler's operation table."""

    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == MAPPED

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "count": self.count, "status": self.status, "mapped": self.mapped}


@dataclass
class CompileResult:
    """What ``edgetpu_compiler`` produced and reported.

    Sizes are bytes (parsed from the compiler's ``6.03MiB`` style). With
    ``num_segments`` the counts and sizes are sums over the segments and
    ``segments`` holds each segment's own report.
    """

    input_path: str
    output_paths: list[str]
    log_path: str | None
    compiler_version: str | None
    ops_on_tpu: int
    ops_on_cpu: int
    total_ops: int
    per_op: list[OpStatus]
    on_chip_bytes: int
    on_chip_remaining_bytes: int | None
    off_chip_bytes: int
    edgetpu_subgraphs: int | None
    compile_ms: int | None
    stdout: str
    log_paths: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    @property
    def fully_mapped(self) -> bool:
        return self.ops_on_cpu == 0 and self.ops_on_tpu > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_path": self.input_path,
            "output_paths": list(self.output_paths),
            "log_path": self.log_path,
            "log_paths": list(self.log_paths),
            "compiler_version": self.compiler_version,
            "ops_on_tpu": self.ops_on_tpu,
            "ops_on_cpu": self.ops_on_cpu,
            "total_ops": self.total_ops,
            "per_op": [r.to_dict() for r in self.per_op],
            "on_chip_bytes": self.on_chip_bytes,
            "on_chip_remaining_bytes": self.on_chip_remaining_bytes,
            "off_chip_bytes": self.off_chip_bytes,
            "edgetpu_subgraphs": self.edgetpu_subgraphs,
            "compile_ms": self.compile_ms,
            "segments": self.segments,
            "command": list(self.command),
            "stdout": self.stdout,
        }

    def format_summary(self) -> str:
        """A short human summary (what ``edgetpu compile`` prints)."""
        mib = lambda b: f"{b / 2**20:.2f} MiB"
        lines = [
            f"edgetpu_compiler {self.compiler_version or '?'}: {self.input_path}",
            f"  output:     {', '.join(self.output_paths)}",
            f"  log:        {self.log_path or '-'}",
            f"  operations: {self.ops_on_tpu} on the Edge TPU, {self.ops_on_cpu} on the CPU (of {self.total_ops})",
            f"  on-chip parameter cache: {mib(self.on_chip_bytes)} used"
            + (f", {mib(self.on_chip_remaining_bytes)} free" if self.on_chip_remaining_bytes is not None else ""),
            f"  off-chip (streamed) parameters: {mib(self.off_chip_bytes)}",
        ]
        if self.per_op:
            w = max(len(r.op) for r in self.per_op)
            lines.append("  per op:")
            for r in self.per_op:
                lines.append(f"    {r.op:<{w}}  {r.count:>5}  {r.status}")
        if self.off_chip_bytes:
            lines.append("  note: some parameters do not fit on chip and stream from host memory (slower)")
        return "\n".join(lines)


def find_compiler() -> str:
    """Path of ``edgetpu_compiler``: ``$EDGETPU_COMPILER``, else the one on ``PATH``.

    Raises:
        CompilerNotFoundError: with how to install it.
    """
    env = os.environ.get("EDGETPU_COMPILER")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            found = shutil.which(env)
            if found:
                return found
            raise CompilerNotFoundError(f"EDGETPU_COMPILER={env}: no such file. {INSTALL_HINT}")
        if not os.access(p, os.X_OK):
            raise CompilerNotFoundError(f"EDGETPU_COMPILER={env}: not executable (chmod +x it). {INSTALL_HINT}")
        return str(p)
    found = shutil.which("edgetpu_compiler")
    if not found:
        raise CompilerNotFoundError(f"edgetpu_compiler not found on PATH. {INSTALL_HINT}")
    return found


# --------------------------------------------------------------------------- parsing

_TABLE_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\S.*?)\s*$")
_FIELDS = {
    "input_model": r"^Input model:\s*(.+?)\s*$",
    "input_size": r"^Input size:\s*(\S+)",
    "output_model": r"^Output model:\s*(.+?)\s*$",
    "output_size": r"^Output size:\s*(\S+)",
    "on_chip": r"^On-chip memory used for caching model parameters:\s*(\S+)",
    "on_chip_remaining": r"^On-chip memory remaining for caching model parameters:\s*(\S+)",
    "off_chip": r"^Off-chip memory used for streaming uncached model parameters:\s*(\S+)",
    "subgraphs": r"^Number of Edge TPU subgraphs:\s*(\d+)",
    "total_ops": r"^Total number of operations:\s*(\d+)",
    "log": r"^Operation log:\s*(.+?)\s*$",
    "ops_on_tpu": r"^Number of operations that will run on Edge TPU:\s*(\d+)",
    "ops_on_cpu": r"^Number of operations that will run on CPU:\s*(\d+)",
    "compile_ms": r"^Model compiled successfully in (\d+) ms",
}
_FIELD_RE = {k: re.compile(v) for k, v in _FIELDS.items()}
_VERSION_RE = re.compile(r"Edge TPU Compiler version (\S+)")


def _parse_table(lines: list[str]) -> list[OpStatus]:
    rows: list[OpStatus] = []
    in_table = False
    for line in lines:
        s = line.rstrip("\n")
        if re.match(r"^Operator\s+Count\s+Status\s*$", s):
            in_table = True
            continue
        if not in_table:
            continue
        if not s.strip():
            continue
        m = _TABLE_ROW.match(s)
        if not m:
            in_table = False  # the table ended (e.g. "Compilation child process ...")
            continue
        rows.append(OpStatus(m.group(1), int(m.group(2)), m.group(3)))
    return rows


def parse_log(text: str) -> dict[str, Any]:
    """Parse a ``*_edgetpu.log``: version, input, output and the operation table."""
    v = _VERSION_RE.search(text)
    inp = re.search(r"^Input:\s*(.+?)\s*$", text, re.MULTILINE)
    out = re.search(r"^Output:\s*(.+?)\s*$", text, re.MULTILINE)
    return {
        "compiler_version": v.group(1) if v else None,
        "input": inp.group(1) if inp else None,
        "output": out.group(1) if out else None,
        "per_op": _parse_table(text.splitlines()),
    }


def parse_stdout(text: str) -> dict[str, Any]:
    """Parse the compiler's stdout into a dict; one entry per compiled model in ``segments``.

    Sizes are converted to bytes. The ``-s`` operation table, when present, is
    returned per segment under ``per_op``.
    """
    v = _VERSION_RE.search(text)
    segments: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    pending_ms: int | None = None
    lines = text.splitlines()
    for line in lines:
        s = line.strip()
        m = _FIELD_RE["compile_ms"].match(s)
        if m:
            pending_ms = int(m.group(1))
            continue
        m = _FIELD_RE["input_model"].match(s)
        if m:
            cur = {"input_model": m.group(1), "compile_ms": pending_ms, "_lines": []}
            pending_ms = None
            segments.append(cur)
            continue
        if cur is None:
            continue
        cur["_lines"].append(line)
        _parse_field(s, cur)
    for seg in segments:
        seg["per_op"] = _parse_table(seg.pop("_lines"))
    return {"compiler_version": v.group(1) if v else None, "segments": segments}


_SIZE_FIELDS = ("input_size", "output_size", "on_chip", "on_chip_remaining", "off_chip")
_COUNT_FIELDS = ("subgraphs", "total_ops", "ops_on_tpu", "ops_on_cpu")


def _parse_field(line: str, seg: dict[str, Any]) -> None:
    """Store the report field on ``line`` (if any) in ``seg``; a size the parser cannot read is left out."""
    for key, rx in _FIELD_RE.items():
        if key in ("input_model", "compile_ms"):
            continue
        m = rx.match(line)
        if not m:
            continue
        val = m.group(1)
        if key in _SIZE_FIELDS:
            try:
                seg[key] = parse_size(val)
            except InputError:
                pass  # an unexpected size format must not fail a compilation that succeeded
        elif key in _COUNT_FIELDS:
            seg[key] = int(val)
        else:
            seg[key] = val
        return


# Failure forms of edgetpu_compiler, most specific first: (needle, kind, advice).
_FAILURES = [
    ("Model not quantized", "not_quantized",
     "convert with full-integer quantization (int8 weights and activations); `edgetpu check` lists the float ops"),
    ("Didn't find op for builtin opcode", "op_version",
     "the converter emitted an op version newer than the compiler's TF Lite runtime; `edgetpu check` names the op"),
    ("Internal compiler error", "internal_error",
     "try -d (search_delegate=True), -a, or a smaller model / num_segments"),
    ("large activation tensors", "large_activations",
     "reduce the input resolution or the widest activations, or split the model (num_segments)"),
    ("Compilation timeout", "timeout", "raise timeout_s; large activations usually cause it"),
    ("Model failed in Tflite interpreter", "interpreter_failed",
     "the model has dynamic-sized tensors: convert with a static batch of 1 (to_tflite(target='edgetpu'))"),
    ("Invalid model", "invalid_model", "`edgetpu check` shows what the compiler cannot read"),
    ("Compilation failed", "compilation_failed", "`edgetpu check` shows which ops cannot map"),
]
_MESSAGE_PREFIXES = (
    "ERROR:", "Invalid model", "Model not quantized", "Model could not be parsed", "Internal compiler error",
    "Compilation failed", "Compilation timeout", "libc++abi", "terminate called",
)


def _failure(stdout: str, returncode: int | None, name: str, log: str | None = None) -> CompilerError:
    kind, advice = "unknown", "see the compiler output"
    for needle, k, a in _FAILURES:
        if needle in stdout:
            kind, advice = k, a
            break
    msg_lines: list[str] = []
    for line in stdout.splitlines():
        s = line.strip()
        if s.startswith(_MESSAGE_PREFIXES) and s not in msg_lines:
            if s.startswith("ERROR: Registration failed"):
                continue
            msg_lines.append(s)
    if not msg_lines:
        tail = [ln.strip() for ln in stdout.splitlines() if ln.strip()][-3:]
        msg_lines = tail or [f"exit status {returncode} and no output model"]
    return CompilerError(
        f"edgetpu_compiler failed on {name} (exit status {returncode}): {' / '.join(msg_lines)} -> {advice}",
        kind=kind,
        returncode=returncode,
        stdout=stdout,
        compiler_message="\n".join(msg_lines),
        log=log,
    )


# --------------------------------------------------------------------------- running


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _check_arguments(num_segments: Any, min_runtime_version: Any, timeout_s: Any) -> int:
    """Validate the numeric options; return the compiler's whole-second timeout."""
    for arg, val in (("num_segments", num_segments), ("min_runtime_version", min_runtime_version)):
        if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 1):
            raise InputError(f"{arg} must be a positive int or None, got {val!r}")
    ok = isinstance(timeout_s, (int, float)) and not isinstance(timeout_s, bool)
    if not ok or not math.isfinite(timeout_s) or timeout_s < 1:
        raise InputError(f"timeout_s must be a finite number of seconds >= 1, got {timeout_s!r}")
    return math.ceil(timeout_s)


def _read_input(model: Any, name: str | None) -> tuple[bytes, Path | None, str, Path]:
    """``(bytes, source path or None, file name, default output folder)``; the model is parsed first."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, src_path, fname, default_out = bytes(model), None, name or "model.tflite", Path.cwd()
        read_model(data)
    else:
        src_path = Path(model)
        read_model(src_path)  # fail early, with the file named: missing, a folder, unreadable, not TFLite
        data, _ = load_bytes(src_path)
        fname, default_out = src_path.name, src_path.parent
    if not fname.endswith(".tflite"):
        fname = fname + ".tflite"
    return data, src_path, fname, default_out


def _expected_outputs(stem: str, num_segments: int | None) -> list[str]:
    names = [f"{stem}_edgetpu.tflite", f"{stem}_edgetpu.log"]
    for i in range(num_segments or 0):
        names += [f"{stem}_segment_{i}_of_{num_segments}_edgetpu.tflite", f"{stem}_segment_{i}_of_{num_segments}_edgetpu.log"]
    return names


def _check_outputs(out: Path, names: list[str], src_path: Path | None) -> None:
    """Refuse, before compiling, an output folder or output file that cannot or must not be written."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; the output (-o / out_dir) must be a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{out}: cannot create this output folder: {parent} is a file")
            break
    for n in names:
        if src_path is not None and _same(out / n, src_path):
            raise OutputError(f"refusing to compile {src_path}: the output {out / n} would overwrite the input")
        check_writable(out / n)


def _command(exe: str, work_out: Path, in_copy: Path, timeout: int, *, show_operations: bool,
             num_segments: int | None, min_runtime_version: int | None, search_delegate: bool) -> list[str]:
    cmd = [exe, "-o", str(work_out), "--timeout_sec", str(timeout)]
    if show_operations:
        cmd.append("-s")
    if num_segments:
        cmd += ["-n", str(num_segments)]
    if min_runtime_version:
        cmd += ["-m", str(min_runtime_version)]
    if search_delegate:
        cmd.append("-d")
    return cmd + [str(in_copy)]


def _run_compiler(cmd: list[str], cwd: Path, timeout: int, fname: str) -> subprocess.CompletedProcess:
    """Run the compiler; killed ``KILL_GRACE_S`` after its own timeout (and at once on Ctrl-C)."""
    try:
        return subprocess.run(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace", timeout=timeout + KILL_GRACE_S, check=False,
        )
    except subprocess.TimeoutExpired as e:
        so = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise CompilerError(
            f"edgetpu_compiler did not finish on {fname} within {timeout} s (+{KILL_GRACE_S:g} s grace) and was "
            "stopped; raise timeout_s, or reduce the model's activations",
            kind="timeout", stdout=so, compiler_message="killed after timeout",
        ) from None
    except OSError as e:
        raise CompilerNotFoundError(f"cannot run {cmd[0]}: {e}. {INSTALL_HINT}") from None


@dataclass
class _Run:
    """What one compiler run left in its temp folder."""

    cmd: list[str]
    stdout: str
    produced: list[Path]
    logs_text: dict[str, str]


def _compile_in(tmpd: Path, cmd_for, timeout: int, data: bytes, fname: str, shown_in: str, out: Path) -> _Run:
    """Compile a copy of the model inside ``tmpd`` (``cmd_for(out_dir, model)`` gives the command line).

    Raises:
        CompilerError: the compiler failed, timed out or wrote no model.
    """
    work_in, work_out = tmpd / "in", tmpd / "out"
    work_in.mkdir()
    work_out.mkdir()
    in_copy = work_in / fname
    in_copy.write_bytes(data)
    cmd = cmd_for(work_out, in_copy)
    proc = _run_compiler(cmd, tmpd, timeout, fname)
    # Show the user's paths, not the temp folder's, in messages and results.
    stdout = (proc.stdout or "").replace(str(in_copy), shown_in).replace(str(work_out), str(out))
    produced = sorted(p for p in work_out.iterdir() if p.is_file())
    logs_text = {p.name: p.read_text(errors="replace") for p in produced if p.name.endswith(".log")}
    if proc.returncode != 0 or not any(p.name.endswith("_edgetpu.tflite") for p in produced):
        raise _failure(stdout, proc.returncode, fname, "\n".join(logs_text.values()) or None)
    return _Run(cmd, stdout, produced, logs_text)


def _publish(produced: list[Path], out: Path, src_path: Path | None) -> dict[str, Path]:
    """Move the compiler's outputs into ``out`` (each through a temp name + rename)."""
    final = {p.name: out / p.name for p in produced}
    for dest in final.values():
        if src_path is not None and _same(dest, src_path):
            raise OutputError(f"refusing to write {dest}: it would overwrite the input model")
        check_writable(dest)
    for p in produced:
        atomic_write_bytes(final[p.name], p.read_bytes())
    return final


def compile(
    model: str | os.PathLike[str] | bytes,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    num_segments: int | None = None,
    min_runtime_version: int | None = None,
    search_delegate: bool = False,
    show_operations: bool = True,
    timeout_s: float = 180,
    name: str | None = None,
) -> CompileResult:
    """Compile a .tflite model for the Edge TPU with ``edgetpu_compiler``.

    Every check that can fail without the compiler (arguments, the model, the
    output folder and files) runs before it.

    Args:
        model: path to a .tflite file, or its bytes.
        out_dir: folder for ``<name>_edgetpu.tflite`` and ``<name>_edgetpu.log``;
            default: the input's folder (the current folder for bytes).
        num_segments: ``-n``: split into N segments for pipelining over N TPUs.
        min_runtime_version: ``-m``: oldest Edge TPU runtime to support (e.g. 13).
        search_delegate: ``-d``: search for a delegate that compiles when the
            whole graph does not.
        show_operations: ``-s``: print the operation table on stdout too.
        timeout_s: ``--timeout_sec`` for the compiler (default 180, at least 1;
            rounded up to whole seconds); the process is killed 30 s after it.
        name: file name to use for bytes input (default ``model.tflite``).

    Returns:
        A :class:`CompileResult`.

    Raises:
        InputError: ``num_segments`` / ``min_runtime_version`` not a positive
            int, ``timeout_s`` not a number >= 1.
        InvalidModelError: the input is missing, unreadable, a folder or not a
            .tflite model.
        OutputError: ``out_dir`` is a file, an output would replace the input,
            or an existing output is read-only.
        CompilerNotFoundError: no compiler (with how to install it).
        CompilerError: the compiler failed; the message carries its own words,
            and the error its ``kind`` (e.g. ``"not_quantized"``,
            ``"op_version"``, ``"internal_error"``, ``"large_activations"``,
            ``"timeout"``, ``"interpreter_failed"``), ``stdout``,
            ``returncode``, ``compiler_message`` and ``log``.
    """
    timeout = _check_arguments(num_segments, min_runtime_version, timeout_s)
    data, src_path, fname, default_out = _read_input(model, name)
    stem = fname[: -len(".tflite")]
    out = Path(out_dir) if out_dir is not None else default_out
    _check_outputs(out, _expected_outputs(stem, num_segments), src_path)
    exe = find_compiler()

    def cmd_for(work_out: Path, in_copy: Path) -> list[str]:
        return _command(exe, work_out, in_copy, timeout, show_operations=show_operations, num_segments=num_segments,
                        min_runtime_version=min_runtime_version, search_delegate=search_delegate)

    shown_in = str(src_path) if src_path is not None else fname
    with tempfile.TemporaryDirectory(prefix="edgetpu_compile_") as tmp:
        run = _compile_in(Path(tmp), cmd_for, timeout, data, fname, shown_in, out)
        final = _publish(run.produced, out, src_path)
    return _result(run, final, shown_in)


def _counts(segs: list[dict[str, Any]], per_op: list[OpStatus]) -> tuple[int, int, int]:
    """(ops on the TPU, ops on the CPU, total) from the stdout report, else from the op table."""
    total = sum(s.get("total_ops", 0) for s in segs)
    if any("ops_on_tpu" in s for s in segs):
        on_tpu = sum(s.get("ops_on_tpu", s.get("total_ops", 0)) for s in segs)
        on_cpu = sum(s.get("ops_on_cpu", 0) for s in segs)
    elif per_op:
        on_tpu = sum(r.count for r in per_op if r.mapped)
        on_cpu = sum(r.count for r in per_op if not r.mapped)
    else:
        on_tpu, on_cpu = total, 0
    return on_tpu, on_cpu, total or on_tpu + on_cpu


def _result(run: _Run, final: dict[str, Path], shown_in: str) -> CompileResult:
    """The :class:`CompileResult` of a successful run whose files are now at ``final``."""
    parsed = parse_stdout(run.stdout)
    segs = parsed["segments"]
    log_names = sorted(run.logs_text)
    per_op: list[OpStatus] = []
    for ln in log_names:
        per_op.extend(parse_log(run.logs_text[ln])["per_op"])
    if not per_op:
        for s in segs:
            per_op.extend(s.get("per_op", []))
    per_op = _merge(per_op)
    on_tpu, on_cpu, total = _counts(segs, per_op)
    remaining = [s["on_chip_remaining"] for s in segs if "on_chip_remaining" in s]
    return CompileResult(
        input_path=shown_in,
        output_paths=[str(final[p.name]) for p in run.produced if p.name.endswith("_edgetpu.tflite")],
        log_path=str(final[log_names[0]]) if log_names else None,
        log_paths=[str(final[n]) for n in log_names],
        compiler_version=parsed["compiler_version"],
        ops_on_tpu=on_tpu,
        ops_on_cpu=on_cpu,
        total_ops=total,
        per_op=per_op,
        on_chip_bytes=sum(s.get("on_chip", 0) for s in segs),
        on_chip_remaining_bytes=min(remaining) if remaining else None,
        off_chip_bytes=sum(s.get("off_chip", 0) for s in segs),
        edgetpu_subgraphs=sum(s["subgraphs"] for s in segs if "subgraphs" in s) if segs else None,
        compile_ms=sum(s["compile_ms"] for s in segs if s.get("compile_ms") is not None) or None,
        stdout=run.stdout,
        segments=[_rename_paths(s, final, shown_in) for s in segs],
        command=run.cmd,
    )


def _rename_paths(seg: dict[str, Any], final: dict[str, Path], shown_in: str) -> dict[str, Any]:
    """A segment's report with the temp-folder paths replaced by the final ones (and the input as the user named it)."""
    out = {k: v for k, v in seg.items() if k != "per_op"}
    for key in ("output_model", "log", "input_model"):
        if key in out:
            base = Path(str(out[key])).name
            if base in final:
                out[key] = str(final[base])
            elif key == "input_model" and base == Path(shown_in).name:
                out[key] = shown_in
            else:
                out[key] = base
    return out


def _merge(rows: list[OpStatus]) -> list[OpStatus]:
    """Sum rows with the same (op, status), keeping first-seen order."""
    acc: dict[tuple, OpStatus] = {}
    for r in rows:
        key = (r.op, r.status)
        if key in acc:
            acc[key].count += r.count
        else:
            acc[key] = OpStatus(r.op, r.count, r.status)
    return list(acc.values())
