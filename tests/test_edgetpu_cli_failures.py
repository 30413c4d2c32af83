"""Every `edgetpu` CLI failure a hostile user found ends with one line and exit 2 (130 on Ctrl-C), writing nothing.

In-process through ``main(argv)``; Ctrl-C and SIGTERM through a real process
(``python -m edgetpu.cli``) and a real signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.broken_models import BROKEN
from fakes.tflite_builder import conv_chain

from edgetpu.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "in" / "net.tflite"
    p.parent.mkdir()
    p.write_bytes(conv_chain(2).build())
    return p


def _one_line(capsys, *words):
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    "flags, words",
    [
        (["-n", "0"], ["edgetpu compile: error: argument -n/--num_segments/--num-segments: expected an integer >= 1, got '0'"]),
        (["--timeout", "0"], ["argument --timeout: expected an integer >= 1, got '0'"]),
        (["-m", "-3"], ["argument -m/--min_runtime_version/--min-runtime-version: expected an integer >= 1, got '-3'"]),
        (["-n", "two"], ["expected an integer >= 1, got 'two'"]),
    ],
    ids=["segments-0", "timeout-0", "runtime-negative", "segments-word"],
)
def test_compile_bad_numbers(compiler_env, model, tmp_path, capsys, flags, words):
    before = _files(tmp_path)
    assert main(["compile", str(model), "-o", str(tmp_path / "out"), *flags]) == 2
    _one_line(capsys, *words)
    assert _files(tmp_path) == before  # nothing written; the compiler never ran (it would log its argv)


def test_compile_output_folder_that_is_a_file_fails_before_compiling(compiler_env, model, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_bytes(b"a file the user keeps")
    assert main(["compile", str(model), "-o", str(target)]) == 2
    _one_line(capsys, f"{target}: is a file; the output (-o / out_dir) must be a folder")
    assert target.read_bytes() == b"a file the user keeps" and not compiler_env.exists()
    assert main(["compile", str(model), "-o", str(target / "sub")]) == 2
    _one_line(capsys, f"{target} is a file")
    assert not compiler_env.exists()


def test_compile_directory_as_model(compiler_env, tmp_path, capsys):
    folder = tmp_path / "models.tflite"
    folder.mkdir()
    assert main(["compile", str(folder)]) == 2
    _one_line(capsys, f"{folder}: is a directory; expected a .tflite model file")
    assert _files(tmp_path) == ["models.tflite"]


def test_compile_read_only_output_is_refused_before_compiling(compiler_env, model, capsys):
    out = model.parent / "net_edgetpu.tflite"
    out.write_bytes(b"an earlier compile, kept read-only")
    out.chmod(0o444)
    assert main(["compile", str(model)]) == 2
    _one_line(capsys, f"{out}: the file exists and is read-only")
    assert out.read_bytes() == b"an earlier compile, kept read-only" and not compiler_env.exists()


def test_compile_unreadable_model(compiler_env, tmp_path, capsys):
    """A PermissionError on the model: one line naming it.

    Root reads any file, so as root the CLI runs in a process without the
    capabilities that bypass file permissions (``setpriv``, util-linux).
    """
    src = tmp_path / "net.tflite"
    src.write_bytes(conv_chain(1).build())
    src.chmod(0)
    if os.geteuid() != 0:
        code = main(["compile", str(src)])
        err = capsys.readouterr().err
    else:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running the tests as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
        r = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                            "edgetpu.cli", "compile", str(src)], check=False, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        code, err = r.returncode, r.stderr
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert f"{src}: cannot read the model (Permission denied)" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.tflite"]  # the compiler never ran, nothing written


@pytest.mark.parametrize(
    "sub, name",
    [("run", n) for n in sorted(BROKEN)]
    # bench never reads the outputs, so a model whose output is never written is only run's failure
    + [("bench", n) for n in sorted(BROKEN) if n != "unproduced_output"],
)
def test_run_and_bench_on_broken_models_exit_2_with_one_line(tmp_path, capfd, name, sub):
    """duplicate_op crashes the TFLite interpreter (SIGSEGV): run/bench load it in a child, so this process lives on.

    capfd: what reaches file descriptor 2 counts, the TFLite runtime's own lines included.
    """
    p = tmp_path / f"{name}.tflite"
    p.write_bytes(BROKEN[name]())
    argv = [sub, str(p)] + (["--runs", "2", "--warmup", "0"] if sub == "bench" else [])
    assert main(argv) == 2
    _one_line(capfd, f"edgetpu {sub}: error: {p}")
    assert _files(tmp_path) == [p.name]


def test_in_process_run_maps_interpreter_errors_too(tmp_path, capsys):
    p = tmp_path / "m.tflite"
    p.write_bytes(BROKEN["unfed_input"]())
    assert main(["run", str(p), "--in-process"]) == 2
    _one_line(capsys, str(p))


@pytest.mark.parametrize("argv, words", [(["bench", "m.tflite", "--runs", "0"], "argument --runs"),
                                         (["run", "m.tflite", "--threads", "0"], "argument --threads"),
                                         (["bench"], "the following arguments are required: MODEL"),
                                         (["nope"], "invalid choice: 'nope'")])
def test_usage_errors_are_one_line(capsys, argv, words):
    assert main(argv) == 2
    _one_line(capsys, words)


# ----------------------------------------------------------------- Ctrl-C and SIGTERM in a real process


def _start(argv, tmp_path, **env):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmpdir), **env}
    return subprocess.Popen([sys.executable, "-m", "edgetpu.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, start_new_session=True), tmpdir


def _wait_for(predicate, proc, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"exited early ({proc.returncode}) before {what}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_compile_leaves_nothing(fake_compiler, model, tmp_path, sig, code, word):
    argv_log = tmp_path / "argv.jsonl"
    out = tmp_path / "out"
    proc, tmpdir = _start(["compile", str(model), "-o", str(out)], tmp_path, EDGETPU_COMPILER=str(fake_compiler),
                          FAKE_EDGETPU_MODE="hang", FAKE_EDGETPU_SLEEP="120", FAKE_EDGETPU_ARGV_LOG=str(argv_log))
    _wait_for(argv_log.exists, proc, "the compiler to start")
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal: the whole foreground process group
    else:
        os.kill(proc.pid, sig)  # a service manager stopping edgetpu alone
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines() == [f"edgetpu compile: {word}"] and stdout == ""
    assert not out.exists() and list(tmpdir.iterdir()) == []  # no output, no temp folder left


def test_ctrl_c_during_bench_exits_130(tmp_path):
    p = tmp_path / "m.tflite"
    p.write_bytes(conv_chain(4, size=32, channels=16).build())
    proc, _ = _start(["-v", "bench", str(p), "--runs", "100000000", "--threads", "1"], tmp_path)
    lines = []

    def started():
        lines.append(proc.stderr.readline())
        return "running on the CPU" in lines[-1]  # logged by make_interpreter, in the child, before the loop

    _wait_for(started, proc, "the benchmark to start")
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    rest = [ln for ln in stderr.strip().splitlines() if not ln.startswith("INFO: Created TensorFlow Lite")]
    assert rest == ["edgetpu bench: interrupted"] and stdout == ""


def test_compile_json_success_still_works(compiler_env, model, tmp_path, capsys):
    assert main(["compile", str(model), "-o", str(tmp_path / "o"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output_paths"] == [str(tmp_path / "o" / "net_edgetpu.tflite")]
