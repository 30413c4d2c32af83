"""A cached virtual environment with the real ``tflite-runtime==2.14.0``, for tests that need a board's interpreter.

``tflite-runtime`` 2.14.0 is the last standalone interpreter wheel that many
Raspberry Pi and Coral images carry; it needs ``numpy<2``, which the project's
own environment (TensorFlow 2.21) cannot have, so it lives in a venv of its
own. The venv holds only ``tflite-runtime``, ``numpy<2`` and ``flatbuffers``:
no ``ai_edge_litert``, no TensorFlow. Scripts run there see this repository's
``edgetpu`` package and nothing else of it (a folder with a link to
``edgetpu/`` only is put on ``PYTHONPATH``), so they prove that `edgetpu`
works on such a board as it is in the working tree.

The venv is built once (pip from the package registry) under
``$KERAS_COMPRESS_CACHE`` (default ``~/.cache/keras-compress``) and reused by
every later run, by any worktree; a file lock keeps two test runs from
building it at once, and a marker written last tells a finished venv from a
half-built one (which is rebuilt).

    run = run_in_tflite_runtime_venv                  # or the ``tflite_runtime_venv`` fixture
    r = run("import sys, edgetpu; print(edgetpu.interpreter_backend().name)")
    r.stdout  ->  "tflite_runtime\\n"
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["REQUIREMENTS", "VenvUnavailable", "ensure_venv", "run_in_tflite_runtime_venv", "venv_dir"]

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("tflite-runtime==2.14.0", "numpy<2", "flatbuffers")
#: CPython versions for which tflite-runtime 2.14.0 publishes wheels.
SUPPORTED_PYTHONS = ((3, 9), (3, 10), (3, 11))


class VenvUnavailable(RuntimeError):
    """The venv cannot be built here; the message is the reason (for ``pytest.skip``)."""


def venv_dir() -> Path:
    root = Path(os.environ.get("KERAS_COMPRESS_CACHE") or Path.home() / ".cache" / "keras-compress")
    return root / f"tflite-runtime-2.14.0-py{sys.version_info.major}{sys.version_info.minor}"


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _build(venv: Path) -> None:
    if venv.exists():
        shutil.rmtree(venv)  # a half-built venv from an interrupted run
    r = subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise VenvUnavailable(f"cannot create a venv with {sys.executable}: {_last_line(r.stderr)}")
    r = subprocess.run(
        [str(_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q", *REQUIREMENTS],
        check=False, capture_output=True, text=True, timeout=900,
    )
    if r.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise VenvUnavailable(f"pip cannot install {' '.join(REQUIREMENTS)} here: {_last_line(r.stderr or r.stdout)}")


def ensure_venv() -> Path:
    """The venv's Python, building the venv first if no finished one is cached.

    Raises:
        VenvUnavailable: this Python has no tflite-runtime 2.14.0 wheel, or pip
            cannot reach the registry; the message says which.
    """
    if sys.version_info[:2] not in SUPPORTED_PYTHONS:
        raise VenvUnavailable(
            f"tflite-runtime 2.14.0 publishes wheels for CPython 3.9-3.11 only; this is {sys.version.split()[0]}"
        )
    venv = venv_dir()
    marker = venv / ".ready"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building it
        if not (marker.exists() and marker.read_text() == "\n".join(REQUIREMENTS)):
            _build(venv)
            marker.write_text("\n".join(REQUIREMENTS))
    return _python(venv)


def run_in_tflite_runtime_venv(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -c script *args`` in the tflite-runtime 2.14 venv, with only this repo's ``edgetpu`` importable.

    The working folder is a fresh temp folder; stdout and stderr are captured
    as text. ``EDGETPU_*`` variables of the caller are not passed on.

    Raises:
        VenvUnavailable: see :func:`ensure_venv`.
    """
    python = ensure_venv()
    with tempfile.TemporaryDirectory(prefix="edgetpu_only_") as stage:
        os.symlink(REPO / "edgetpu", Path(stage) / "edgetpu", target_is_directory=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("EDGETPU_", "PYTHON", "VIRTUAL_ENV", "TF_"))}
        env.update(PYTHONPATH=stage, PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run([str(python), "-c", script, *args], check=False, capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=stage)
