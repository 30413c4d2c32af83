"""edgetpu.compile against a fake edgetpu_compiler that prints the real formats (tests/fakes/edgetpu_compiler)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
from fakes.tflite_builder import Graph, conv_chain

import edgetpu
from edgetpu import compiler
from edgetpu.cli import main as cli_main
from edgetpu.compiler import (
    INSTALL_HINT,
    find_compiler,
    parse_log,
    parse_size,
    parse_stdout,
)
from edgetpu.compiler import compile as compile_model
from edgetpu.errors import (
    CompilerError,
    CompilerNotFoundError,
    InputError,
    InvalidModelError,
    OutputError,
)

REAL_STDOUT = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1354 ms.

Input model: yolox_tiny_ti_lite_full_integer_quant.tflite
Input size: 5.10MiB
Output model: yolox_tiny_ti_lite_full_integer_quant_edgetpu.tflite
Output size: 6.28MiB
On-chip memory used for caching model parameters: 6.03MiB
On-chip memory remaining for caching model parameters: 1.21MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 143
Operation log: yolox_tiny_ti_lite_full_integer_quant_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 139
Number of operations that will run on CPU: 4

Operator                       Count      Status

ADD                            3          Mapped to Edge TPU
DEQUANTIZE                     2          Operation is working on an unsupported data type
CONCATENATION                  1          More than one subgraph is not supported
"""


def _model(tmp_path, data=None, name="net.tflite"):
    p = tmp_path / "in" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data if data is not None else conv_chain(3).build())
    return p


def _digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "text, expected",
    [("6.03MiB", round(6.03 * 2**20)), ("0.00B", 0), ("512.00KiB", 512 * 1024), ("41.75KiB", round(41.75 * 1024)),
     ("1.21MiB", round(1.21 * 2**20)), ("187.00KiB", 187 * 1024), ("2GiB", 2 * 2**30), ("12B", 12)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "MiB", "6.03", "six MiB", "1.0XB"])
def test_parse_size_rejects_non_sizes(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_parse_real_stdout_shape():
    p = parse_stdout(REAL_STDOUT)
    assert p["compiler_version"] == "16.0.384591198"
    (seg,) = p["segments"]
    assert seg["compile_ms"] == 1354 and seg["total_ops"] == 143
    assert seg["ops_on_tpu"] == 139 and seg["ops_on_cpu"] == 4
    assert seg["on_chip"] == parse_size("6.03MiB") and seg["off_chip"] == 0
    assert seg["input_size"] == parse_size("5.10MiB") and seg["subgraphs"] == 1
    assert seg["log"] == "yolox_tiny_ti_lite_full_integer_quant_edgetpu.log"
    assert [(r.op, r.count, r.mapped) for r in seg["per_op"]] == [("ADD", 3, True), ("DEQUANTIZE", 2, False),
                                                                   ("CONCATENATION", 1, False)]
    assert seg["per_op"][1].status == "Operation is working on an unsupported data type"


def test_parse_log_table_with_several_rows_per_op():
    log = ("Edge TPU Compiler version 15.0.340273435\nInput: model.tflite\nOutput: ./EdgeTPU/model_edgetpu.tflite\n\n"
           "Operator                       Count      Status\n\n"
           "QUANTIZE                       1          Mapped to Edge TPU\n"
           "QUANTIZE                       1          Operation is otherwise supported, but not mapped due to some "
           "unspecified limitation\n"
           "TRANSPOSE                      70         Operation not supported\n")
    p = parse_log(log)
    assert p["compiler_version"] == "15.0.340273435" and p["input"] == "model.tflite"
    assert [(r.op, r.count) for r in p["per_op"]] == [("QUANTIZE", 1), ("QUANTIZE", 1), ("TRANSPOSE", 70)]
    assert p["per_op"][1].status.startswith("Operation is otherwise supported")


def test_compile_success_parses_everything_and_never_touches_the_input(compiler_env, tmp_path):
    src = _model(tmp_path)
    before = _digest(src)
    out = tmp_path / "out"
    r = edgetpu.compile(src, out)
    assert _digest(src) == before
    assert r.output_paths == [str(out / "net_edgetpu.tflite")] and os.path.isfile(r.output_paths[0])
    assert r.log_path == str(out / "net_edgetpu.log") and os.path.isfile(r.log_path)
    assert r.compiler_version == "16.0.384591198"
    assert (r.ops_on_tpu, r.ops_on_cpu, r.total_ops) == (3, 0, 3) and r.fully_mapped
    assert [(o.op, o.count, o.status) for o in r.per_op] == [("CONV_2D", 3, "Mapped to Edge TPU")]
    assert r.on_chip_bytes == parse_size("480.00B") and r.off_chip_bytes == 0
    assert r.on_chip_remaining_bytes > 7 * 2**20
    assert r.segments[0]["output_model"] == r.output_paths[0]
    assert f"Input model: {src}" in r.stdout and "edgetpu_compile_" not in r.stdout  # user's paths, not temp ones
    d = json.loads(json.dumps(r.to_dict()))
    assert d["per_op"][0]["mapped"] is True
    assert "3 on the Edge TPU, 0 on the CPU" in r.format_summary()
    argv = json.loads(compiler_env.read_text().splitlines()[-1])
    assert "-s" in argv and argv[argv.index("--timeout_sec") + 1] == "180"
    # the compiler ran on a copy in a temp folder, never on the input path
    assert str(src) not in argv
    assert sorted(p.name for p in out.iterdir()) == ["net_edgetpu.log", "net_edgetpu.tflite"]


def test_compile_defaults_to_the_input_folder_and_passes_flags(compiler_env, tmp_path):
    src = _model(tmp_path)
    r = compile_model(src, min_runtime_version=13, search_delegate=True, timeout_s=60, show_operations=False)
    assert r.output_paths == [str(src.parent / "net_edgetpu.tflite")]
    argv = json.loads(compiler_env.read_text().splitlines()[-1])
    assert argv[argv.index("-m") + 1] == "13" and "-d" in argv and "-s" not in argv
    assert argv[argv.index("--timeout_sec") + 1] == "60"
    assert "Searching for valid delegate" in r.stdout
    # without -s the table comes from the .log
    assert [(o.op, o.count) for o in r.per_op] == [("CONV_2D", 3)]


def test_compile_partial_mapping_counts_tpu_and_cpu_ops(compiler_env, tmp_path):
    g = Graph()
    x = g.tensor("x", "int8", [1, 8, 8, 4], input=True)
    y = g.tensor("y", "int8", [1, 8, 8, 4])
    z = g.tensor("z", "int8", [1, 8, 8, 4])
    o = g.tensor("o", "int8", [1, 8, 8, 4], output=True)
    g.op("RELU", [x], [y])
    g.op("HARD_SWISH", [y], [z])
    g.op("RELU", [z], [o])
    src = _model(tmp_path, g.build())
    r = compile_model(src, tmp_path / "out")
    assert (r.ops_on_tpu, r.ops_on_cpu, r.total_ops) == (1, 2, 3) and not r.fully_mapped
    statuses = {(o.op, o.status): o.count for o in r.per_op}
    assert statuses == {("RELU", "Mapped to Edge TPU"): 1, ("HARD_SWISH", "Operation not supported"): 1,
                        ("RELU", "More than one subgraph is not supported"): 1}


def test_compile_segments(compiler_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "success")
    src = _model(tmp_path)
    out = tmp_path / "out"
    r = compile_model(src, out, num_segments=2)
    assert r.output_paths == [str(out / "net_segment_0_of_2_edgetpu.tflite"), str(out / "net_segment_1_of_2_edgetpu.tflite")]
    assert len(r.segments) == 2 and len(r.log_paths) == 2
    assert r.ops_on_tpu == r.total_ops == 9
    argv = json.loads(compiler_env.read_text().splitlines()[-1])
    assert argv[argv.index("-n") + 1] == "2"


def test_compile_off_chip_parameters(compiler_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "offchip")
    r = compile_model(_model(tmp_path), tmp_path / "out")
    assert r.off_chip_bytes > 0 and r.on_chip_remaining_bytes == 0
    assert "stream from host memory" in r.format_summary()


def test_compile_bytes_input(compiler_env, tmp_path):
    r = compile_model(conv_chain(1).build(), tmp_path / "o", name="from_bytes.tflite")
    assert r.output_paths == [str(tmp_path / "o" / "from_bytes_edgetpu.tflite")]


@pytest.mark.parametrize(
    "mode, kind, words",
    [
        ("not_quantized", "not_quantized", "Model not quantized"),
        ("op_version", "op_version", "Didn't find op for builtin opcode 'CONV_2D' version '6'"),
        ("internal", "internal_error", "Internal compiler error. Aborting!"),
        ("large_activations", "large_activations", "Compilation failed due to large activation tensors in model."),
        ("timeout", "timeout", "Compilation timeout. This is usually caused by large activations."),
        ("interpreter", "interpreter_failed", "Model failed in Tflite interpreter"),
        ("no_output", "unknown", "Model compiled successfully"),
    ],
)
def test_compiler_failures_carry_the_compilers_own_message(compiler_env, tmp_path, monkeypatch, mode, kind, words):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", mode)
    src = _model(tmp_path)
    before = _digest(src)
    out = tmp_path / "out"
    with pytest.raises(CompilerError) as e:
        compile_model(src, out)
    assert e.value.kind == kind
    assert words in str(e.value)
    assert "net.tflite" in str(e.value) and "edgetpu_compile_" not in str(e.value)  # user's name, not the temp copy
    assert _digest(src) == before
    assert not out.exists() or list(out.iterdir()) == []  # nothing half-written


def test_auto_mode_float_model_and_new_op_version(compiler_env, tmp_path):
    with pytest.raises(CompilerError, match="Model not quantized") as e:
        compile_model(_model(tmp_path, conv_chain(1, dtype="float32").build()), tmp_path / "o")
    assert e.value.kind == "not_quantized"
    with pytest.raises(CompilerError, match="version '6'") as e:
        compile_model(_model(tmp_path, conv_chain(1, conv_version=6).build(), "v6.tflite"), tmp_path / "o")
    assert e.value.kind == "op_version" and e.value.returncode == 1


def test_hung_compiler_is_stopped(compiler_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "hang")
    monkeypatch.setenv("FAKE_EDGETPU_SLEEP", "30")
    monkeypatch.setattr(compiler, "KILL_GRACE_S", 0.0)
    with pytest.raises(CompilerError, match="did not finish") as e:
        compile_model(_model(tmp_path), tmp_path / "o", timeout_s=1)
    assert e.value.kind == "timeout"


def test_refuses_when_an_output_would_overwrite_the_input(compiler_env, tmp_path):
    src = _model(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "net_edgetpu.tflite").symlink_to(src)
    before = _digest(src)
    with pytest.raises(OutputError, match="overwrite the input"):
        compile_model(src, out)
    assert _digest(src) == before
    assert not compiler_env.exists()  # refused before the compiler ran


def test_bad_input_is_invalid_model_before_running(compiler_env, tmp_path):
    png = tmp_path / "x.tflite"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    with pytest.raises(InvalidModelError, match="PNG"):
        compile_model(png)
    with pytest.raises(InvalidModelError, match="no such file"):
        compile_model(tmp_path / "missing.tflite")
    assert not compiler_env.exists()  # the compiler never ran


@pytest.mark.parametrize(
    "kw, words",
    [({"num_segments": 0}, "num_segments must be a positive int or None, got 0"),
     ({"num_segments": True}, "num_segments must be a positive int or None, got True"),
     ({"min_runtime_version": "14"}, "min_runtime_version must be a positive int or None, got '14'"),
     ({"timeout_s": 0}, "timeout_s must be a finite number of seconds >= 1, got 0"),
     ({"timeout_s": 0.5}, "got 0.5"), ({"timeout_s": float("nan")}, "got nan"), ({"timeout_s": float("inf")}, "got inf"),
     ({"timeout_s": None}, "got None")],
)
def test_bad_arguments_are_input_errors_before_anything_runs(compiler_env, tmp_path, kw, words):
    src = _model(tmp_path)
    with pytest.raises(InputError, match=re.escape(words)):
        compile_model(src, tmp_path / "out", **kw)
    assert not compiler_env.exists() and not (tmp_path / "out").exists()


def test_fractional_timeout_is_rounded_up_to_whole_seconds(compiler_env, tmp_path):
    compile_model(_model(tmp_path), tmp_path / "out", timeout_s=1.2)
    argv = json.loads(compiler_env.read_text().splitlines()[-1])
    assert argv[argv.index("--timeout_sec") + 1] == "2"


def test_compiler_error_carries_its_data_as_constructor_fields(compiler_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "op_version")
    with pytest.raises(CompilerError) as e:
        compile_model(_model(tmp_path), tmp_path / "o")
    err = e.value
    assert (err.kind, err.returncode) == ("op_version", 1)
    assert "Registration failed" in err.stdout and err.compiler_message.splitlines()[0].startswith("ERROR: Didn't find")
    assert err.log is None  # this failure writes no operation log
    clone = CompilerError(str(err), kind=err.kind, returncode=err.returncode, stdout=err.stdout,
                          compiler_message=err.compiler_message, log="table")
    assert (clone.kind, clone.log, str(clone)) == ("op_version", "table", str(err))


@pytest.mark.parametrize("mode", [0o444, 0o640], ids=["read-only", "writable"])
def test_an_existing_output_is_replaced_keeping_its_mode_unless_read_only(compiler_env, tmp_path, mode):
    src = _model(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    old = out / "net_edgetpu.tflite"
    old.write_bytes(b"an earlier compile")
    old.chmod(mode)
    if mode == 0o444:
        with pytest.raises(OutputError, match=r"net_edgetpu.tflite: the file exists and is read-only"):
            compile_model(src, out)
        assert old.read_bytes() == b"an earlier compile" and not compiler_env.exists()  # refused before compiling
    else:
        compile_model(src, out)
        assert old.read_bytes() != b"an earlier compile"
    assert os.stat(old).st_mode & 0o777 == mode


def test_new_outputs_follow_the_umask(compiler_env, tmp_path):
    old = os.umask(0o027)
    try:
        r = compile_model(_model(tmp_path), tmp_path / "out")
    finally:
        os.umask(old)
    for p in [*r.output_paths, r.log_path]:
        assert os.stat(p).st_mode & 0o777 == 0o640, p  # 0o666 & ~0o027, as open() would create them


def test_find_compiler(monkeypatch, tmp_path, fake_compiler):
    monkeypatch.setenv("EDGETPU_COMPILER", str(fake_compiler))
    assert find_compiler() == str(fake_compiler)
    monkeypatch.setenv("EDGETPU_COMPILER", str(tmp_path / "nope"))
    with pytest.raises(CompilerNotFoundError, match="EDGETPU_COMPILER=.*no such file"):
        find_compiler()
    plain = tmp_path / "edgetpu_compiler"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    monkeypatch.setenv("EDGETPU_COMPILER", str(plain))
    with pytest.raises(CompilerNotFoundError, match="not executable"):
        find_compiler()
    monkeypatch.delenv("EDGETPU_COMPILER")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CompilerNotFoundError) as e:
        find_compiler()
    msg = str(e.value)
    assert "apt-get install edgetpu-compiler" in msg and "x86-64" in msg and "edgetpu check" in msg
    assert "\n" not in msg


def test_cli_compile_without_compiler_exits_2_with_install_hint(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("EDGETPU_COMPILER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    src = _model(tmp_path)
    assert cli_main(["compile", str(src)]) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and INSTALL_HINT in lines[0] and "Traceback" not in cap.err
    assert cap.out == ""


def test_cli_compile_with_fake(compiler_env, tmp_path, capsys, monkeypatch):
    src = _model(tmp_path)
    assert cli_main(["compile", str(src), "-o", str(tmp_path / "o"), "-m", "13", "--timeout", "90"]) == 0
    out = capsys.readouterr().out
    assert "net_edgetpu.tflite" in out and "3 on the Edge TPU" in out
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "internal")
    assert cli_main(["compile", str(src), "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Internal compiler error" in err[0]
